/* fuzz.h - the fuzz harnesses of attnbench's file readers (tests/fuzz/README.md).
 *
 * Every harness is one function with libFuzzer's contract, LLVMFuzzerTestOneInput: it is given
 * any bytes, hands them to one reader as a file (or a buffer, where the reader has a buffer
 * form), uses whatever the reader returns, frees it, and returns 0. The property under test is
 * the readers' contract: any input gives AB_OK or an AB_E_* code, never a crash, a hang, a leak
 * or an allocation the input's size does not justify. The harness itself asserts nothing more;
 * the sanitizers (ASan, UBSan in `make fuzz`) and the drivers see the rest.
 *
 * The same harness links either with libFuzzer (clang -fsanitize=fuzzer, `make fuzz`) or with
 * fuzz_main.c, a small mutating driver any C compiler builds, which `make test` runs for a few
 * seconds per harness over the seeds fuzz_seeds writes. */
#ifndef AB_TESTS_FUZZ_H
#define AB_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes data[0 .. size) to this process's private input file, whose name ends in `suffix`
 * (".npz", ".h5", ...; the readers that look at a name see a plausible one), and returns its
 * path (static storage; the same path each call with the same suffix). The directory, under
 * $TMPDIR or /dev/shm, is removed at exit. Aborts when the file cannot be written: the
 * harness cannot go on without it. */
const char *fz_file(const uint8_t *data, size_t size, const char *suffix);

/* Imports the container at path as q, k, v (with a tokens tensor when tokens is not NULL)
 * when ab_array_sniff finds it is of `format` (enum ab_array_format): import sniffs, and the
 * other formats have their own harnesses. */
void fz_import(const char *path, int format, const char *tokens);

/* For the HDF5 harnesses, on every input: makes ab_h5_open probe the rewritten file again, and
 * the first time, registers a line at exit on stderr with the number of libhdf5 crashes the
 * probe contained (make fuzz's table reads it). */
void fz_h5_input(void);

#endif
