#!/bin/sh
# seeds.sh - writes every harness's seed corpus under OUTDIR (one folder per harness): the
# byte formats by fuzz_seeds, the HDF5 files by the CLI (a synthetic workload with tasks, an
# imported one, and the results of run and heads), the scenarios from scenarios/.
#   seeds.sh ATTNBENCH FUZZ_SEEDS SRCDIR OUTDIR [SHAREDDIR]
set -eu
ab=$1 seeds=$2 src=$3 out=$4 shared=${5:-}
rm -rf "$out"
mkdir -p "$out/h5_workload" "$out/h5_results" "$out/scenario"
tok=""
[ -n "$shared" ] && [ -f "$shared/models/stories260K/tok512.bin" ] && tok="$shared/models/stories260K/tok512.bin"
"$seeds" "$out" $tok
q="--quiet --threads 1"
"$ab" gen --n 64 --layers 1 --heads 2 --kv-heads 1 --d 32 --tasks retrieve --n-tasks 1 \
    --task-rows 8 $q -o "$out/h5_workload/synthetic.h5" > /dev/null
"$ab" import "$out/npz/qkv-stored-z64_0.npz" $q -o "$out/h5_workload/imported.h5" > /dev/null
"$ab" run "$out/h5_workload/synthetic.h5" --methods dense,streaming,quest --budgets 0.5 \
    --decode-queries 4 --rows 8 $q -o "$out/h5_results/run.h5" > /dev/null
"$ab" heads "$out/h5_workload/synthetic.h5" $q -o "$out/h5_results/heads.h5" > /dev/null
rm -f "$out/h5_results/"*.csv "$out/h5_results/"*.png
cp "$src"/scenarios/*.yaml "$out/scenario/"
