/* fault_inject.c - a test-only LD_PRELOAD shim that makes one of attnbench's own allocations fail
 * (tests/test_faults.c; issue 15, "fault injection").
 *
 * It interposes malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, strdup and
 * strndup, and counts only the calls made from the main program's code (the return address lies
 * in its executable PT_LOAD segment; libattnbench is linked statically into it), so the
 * allocations of libhdf5, OpenBLAS, libgomp and glibc itself are never failed: their own
 * handling of a failure is out of scope. The real allocator is reached through glibc's
 * __libc_* entry points, so no dlsym (which allocates) is needed.
 *
 * Environment, read once at load and then removed, so that processes the program starts
 * (gnuplot) run without the shim:
 *   AB_FAULT_ALLOC=N    the Nth counted allocation returns NULL with errno ENOMEM (1-based)
 *   AB_FAULT_PERSIST=1  and so does every counted allocation after it
 *   AB_FAULT_COUNT=FILE at exit, the number of counted allocations is written to FILE
 *   AB_FAULT_WHERE=FILE the failed allocation's call stack within the program, as offsets for
 *                       `addr2line -f -e attnbench`, is written to FILE (to find the call site)
 * A forked child (the HDF5 probe) inherits the count where it was and never writes FILE. */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t k, size_t n);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

static uintptr_t text_lo, text_hi; /* the main program's code: [text_lo, text_hi) */
static uintptr_t load_bias;
static long fail_at; /* AB_FAULT_ALLOC; 0: fail nothing */
static int persist;
static long counted;
static char count_path[4096], where_path[4096];
static pid_t owner;
static volatile int ready;

/* The first object dl_iterate_phdr reports is the main program: its executable segment. */
static int find_text(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size, (void)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            load_bias = info->dlpi_addr;
            text_lo = info->dlpi_addr + ph->p_vaddr;
            text_hi = text_lo + ph->p_memsz;
        }
    }
    return 1;
}

__attribute__((constructor)) static void fault_init(void)
{
    dl_iterate_phdr(find_text, NULL);
    const char *a = getenv("AB_FAULT_ALLOC"), *p = getenv("AB_FAULT_PERSIST");
    const char *c = getenv("AB_FAULT_COUNT"), *w = getenv("AB_FAULT_WHERE");
    fail_at = a ? strtol(a, NULL, 10) : 0;
    persist = p && *p == '1';
    if (c) snprintf(count_path, sizeof count_path, "%s", c);
    if (w) snprintf(where_path, sizeof where_path, "%s", w);
    unsetenv("AB_FAULT_ALLOC"), unsetenv("AB_FAULT_PERSIST"), unsetenv("AB_FAULT_COUNT");
    unsetenv("AB_FAULT_WHERE");
    unsetenv("LD_PRELOAD");
    owner = getpid();
    ready = 1;
}

/* Appends one line to path (no allocation: open, write). */
static void put_line(const char *path, const char *fmt, unsigned long x)
{
    char line[64];
    int len = snprintf(line, sizeof line, fmt, x);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return;
    ssize_t w = write(fd, line, (size_t)len);
    (void)w;
    close(fd);
}

__attribute__((destructor)) static void fault_fini(void)
{
    if (!count_path[0] || getpid() != owner) return;
    unlink(count_path);
    put_line(count_path, "%lu\n", (unsigned long)__atomic_load_n(&counted, __ATOMIC_SEQ_CST));
}

/* 1 when this allocation, made from return address ra, is to fail (errno set). */
static int fault(void *ra)
{
    uintptr_t r = (uintptr_t)ra;
    if (!ready || r < text_lo || r >= text_hi) return 0;
    long k = __atomic_add_fetch(&counted, 1, __ATOMIC_SEQ_CST);
    if (!fail_at || k < fail_at || (k > fail_at && !persist)) return 0;
    if (where_path[0] && k == fail_at) {
        void *frames[24];
        int n = backtrace(frames, 24);
        for (int i = 1; i < n; i++)
            if ((uintptr_t)frames[i] >= text_lo && (uintptr_t)frames[i] < text_hi)
                put_line(where_path, "0x%lx\n", (uintptr_t)frames[i] - load_bias - 1);
    }
    errno = ENOMEM;
    return 1;
}

void *malloc(size_t n)
{
    return fault(__builtin_return_address(0)) ? NULL : __libc_malloc(n);
}

void *calloc(size_t k, size_t n)
{
    return fault(__builtin_return_address(0)) ? NULL : __libc_calloc(k, n);
}

void *realloc(void *p, size_t n)
{
    if (p && n == 0) return __libc_realloc(p, n); /* a free */
    return fault(__builtin_return_address(0)) ? NULL : __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    return fault(__builtin_return_address(0)) ? NULL : __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
    return fault(__builtin_return_address(0)) ? NULL : __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
    if (fault(__builtin_return_address(0))) return ENOMEM;
    void *p = __libc_memalign(align, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

char *strdup(const char *s)
{
    if (fault(__builtin_return_address(0))) return NULL;
    size_t n = strlen(s) + 1;
    char *d = __libc_malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

char *strndup(const char *s, size_t max)
{
    if (fault(__builtin_return_address(0))) return NULL;
    size_t n = strnlen(s, max);
    char *d = __libc_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}
