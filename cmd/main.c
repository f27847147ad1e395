/* main.c - the attnbench command table (git.c's idea: one table, one file per command).
 * Only cmd/ parses argv, prints for people, or exits. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/ab.h"
#include "core/machine.h"
#include "io/io.h"
#include "opts.h"
#ifdef AB_HAVE_MPI
#include <mpi.h>
#endif

struct cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct cmd commands[] = {
    {"gen", cmd_gen, "write a synthetic workload with planted structure and task ground truth"},
    {"capture", cmd_capture, "run a Llama-family model on text or token ids and write its Q, K, V"},
    {"eval-model", cmd_eval_model, "put methods inside a model's attention: perplexity and copy accuracy vs dense"},
    {"import", cmd_import, "bring Q/K/V from .npy, .npz, safetensors or HDF5 into a workload"},
    {"ingest", cmd_ingest, "bring a method's outputs computed elsewhere into the results table"},
    {"info", cmd_info, "print what an attnbench file holds"},
    {"methods", cmd_methods, "list the method registry, or show one method"},
    {"selftest", cmd_selftest, "check method rows (a plugin's) against the generic battery"},
    {"run", cmd_run, "evaluate methods x budgets x phases on workloads against exact attention"},
    {"merge", cmd_merge, "join the pieces of `run --shard I/N` into one results file"},
    {"render", cmd_render, "draw one head's exact attention map (or a method's kept mask) as a PNG"},
    {"report", cmd_report, "turn results files into plots, heatmaps, CSV tables and report.md"},
    {"scenario", cmd_scenario, "run a declared study (scenarios/*.yaml) end to end"},
    {"check", cmd_check, "regression gate: compare results with a baseline, exit 1 on regression"},
    {"verify", cmd_verify, "compare an external kernel's outputs with the double-precision reference"},
    {"heads", cmd_heads, "per-head sink, dormancy, locality and retrieval statistics of workloads"},
    {"convert", cmd_convert, "rewrite a model as GGUF with F32, F16, BF16 or Q8_0 weights"},
    {"bench", cmd_bench, "measure kernel throughput against the machine's GEMM rate"},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *f)
{
    fprintf(f, "usage: attnbench <command> [options]\n       attnbench help <command>\n"
               "       attnbench --version\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nEvery command accepts --help, --seed, --threads, --quiet, --verbose.\n");
}

static void version(void)
{
    printf("attnbench %s\n", ab_version());
    printf("blas: %s\n", ab_blas_config());
    const char *fix = ab_machine_blas_fix();
    printf("cpu: %s; BLAS kernel set %s%s%s%s\n", ab_machine_isa(), ab_machine_blas_core(),
           fix ? " (for an older CPU: set OPENBLAS_CORETYPE=" : "", fix ? fix : "",
           fix ? " to use this CPU's vector width; `attnbench bench machine` measures both)" : "");
    printf("hdf5: %s\n", ab_io_hdf5_version());
    printf("openmp: %d (max threads %d)\n", ab_openmp_version(), ab_threads_get());
#ifdef AB_HAVE_MPI
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    printf("mpi: yes, %.*s (mpirun -np K attnbench run ...)\n", (int)strcspn(lib, ",\n"), lib);
#else
    printf("mpi: no (a build without MPI: run --shard and merge split work instead)\n");
#endif
}

static void log_stderr(int level, const char *msg, void *user)
{
    (void)user;
    fprintf(stderr, "%s%s\n", level == AB_LOG_ERROR ? "error: " : level == AB_LOG_WARN ? "warning: " : "",
            msg);
}

static const struct cmd *find(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

/* The exit status once stdout is flushed: output that could not be written (stdout on a full
 * disk) fails a command that had no error of its own with exit 74 and one line. */
static int flush_stdout(int status)
{
    errno = 0;
    int bad = fflush(stdout) != 0 || ferror(stdout);
    if (!bad || status != EX_AB_OK) return status;
    return ab_cmd_error(EX_AB_IOERR, "cannot write to standard output: %s",
                        errno ? strerror(errno) : "write error");
}

static int run(int argc, char **argv);

int main(int argc, char **argv)
{
    ab_io_start(); /* libhdf5 without its exit handler (io.h says why) */
    return flush_stdout(run(argc, argv));
}

static int run(int argc, char **argv)
{
    /* verbosity is fixed once the command has parsed its options; until then, warnings */
    ab_log_set(log_stderr, NULL, AB_LOG_WARN);
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--quiet")) ab_log_set(log_stderr, NULL, AB_LOG_ERROR);
        if (!strcmp(argv[a], "--verbose")) ab_log_set(log_stderr, NULL, AB_LOG_DEBUG);
    }
    if (argc < 2) {
        usage(stderr);
        return EX_AB_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        version();
        return EX_AB_OK;
    }
    if (!strcmp(name, "-h") || !strcmp(name, "--help")) {
        usage(stdout);
        return EX_AB_OK;
    }
    if (!strcmp(name, "help")) {
        if (argc < 3) {
            usage(stdout);
            return EX_AB_OK;
        }
        const struct cmd *c = find(argv[2]);
        if (!c) return ab_cmd_error(EX_AB_USAGE, "unknown command '%s' (see 'attnbench --help')", argv[2]);
        char *args[] = {argv[2], "--help", NULL};
        return c->fn(2, args);
    }
    const struct cmd *c = find(name);
    if (!c) return ab_cmd_error(EX_AB_USAGE, "unknown command '%s' (see 'attnbench --help')", name);
    return c->fn(argc - 1, argv + 1);
}
