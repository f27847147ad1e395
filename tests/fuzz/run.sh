#!/bin/bash
# run.sh - `make fuzz`: every libFuzzer harness in turn, each for SECONDS or RUNS executions,
# from its seeds and the corpus earlier runs grew (kept in DIR/corpus/NAME); then a table of
# executions and crashes per harness on stdout and in DIR/fuzz-report.md. A crash, a leak, a
# timeout or an out-of-memory stops that harness, leaves the input in DIR/crashes/ and counts
# as 1; the run goes on to the next harness and exits 1 at the end.
#   run.sh DIR SEEDS [HARNESS...]     env: FUZZ_SECONDS (default 60), FUZZ_RUNS (default: no
#                                     limit), FUZZ_JOBS (harnesses at once, default 1)
set -u
dir=$1 seeds=$2
shift 2
all="npy npz safetensors gguf llama2c tokenizer scenario h5_workload h5_results"
harnesses=${*:-$all}
secs=${FUZZ_SECONDS:-60} runs=${FUZZ_RUNS:--1} jobs=${FUZZ_JOBS:-1}
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/corpus" "$dir/crashes" "$dir/logs"
export LSAN_OPTIONS="suppressions=$src/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"

one() { # NAME: one libFuzzer run, its log in logs/NAME.log
    h=$1
    mkdir -p "$dir/corpus/$h"
    started=$(date +%s)
    "$dir/tests/fuzz/fuzz_$h" "$dir/corpus/$h" "$seeds/$h" -max_total_time="$secs" -runs="$runs" \
        -timeout=30 -rss_limit_mb=4096 -malloc_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$dir/crashes/$h-" > "$dir/logs/$h.log" 2>&1
    echo "$? $(( $(date +%s) - started ))" > "$dir/logs/$h.status"
}

running=0
for h in $harnesses; do
    [ -x "$dir/tests/fuzz/fuzz_$h" ] || { echo "run.sh: no harness fuzz_$h in $dir" >&2; exit 2; }
    echo "fuzz_$h: running (log: $dir/logs/$h.log)" >&2
    one "$h" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
done
wait

failed=0
{
    echo "| harness | executions | seconds | exec/s | corpus | crashes | contained libhdf5 crashes |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for h in $harnesses; do
        log="$dir/logs/$h.log"
        read -r status took < "$dir/logs/$h.status"
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        corpus=$(ls "$dir/corpus/$h" | wc -l)
        contained=$(sed -n 's/^fuzz_h5: crashes of libhdf5 contained by the probe: //p' "$log" | tail -n 1)
        crashes=0
        if [ "$status" != 0 ]; then
            crashes=1 failed=1
        fi
        rate=$(( ${execs:-0} / (took > 0 ? took : 1) ))
        echo "| fuzz_$h | ${execs:-?} | $took | $rate | $corpus | $crashes | ${contained:--} |"
    done
} | tee "$dir/fuzz-report.md"
if [ "$failed" != 0 ]; then
    echo "run.sh: a harness failed: see $dir/crashes/ and $dir/logs/" >&2
    exit 1
fi
