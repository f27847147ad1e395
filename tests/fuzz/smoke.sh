#!/bin/sh
# smoke.sh - the fuzzers' smoke run in `make test`: the seeds (seeds.sh), then every harness
# for SECONDS (default 2) from a fixed random seed. A crash, a hang or a sanitizer report
# fails the test and leaves the input in BUILDDIR/tests/fuzz/crash-*.
#   smoke.sh ATTNBENCH FUZZ_SEEDS SRCDIR BUILDDIR SHAREDDIR [SECONDS]
set -eu
ab=$1 seeds=$2 src=$3 dir=$4 shared=$5 secs=${6:-2}
"$src/tests/fuzz/seeds.sh" "$ab" "$seeds" "$src" "$dir/seeds" "$shared"
# a sanitizer build (make asan): libhdf5's own leaks on damaged files are not ours (lsan.supp)
export LSAN_OPTIONS="suppressions=$src/tests/fuzz/lsan.supp:print_suppressions=0"
cd "$dir"
for h in npy npz safetensors gguf llama2c tokenizer scenario h5_workload h5_results; do
    "./fuzz_$h" -t "$secs" -s 1 "seeds/$h"
done
