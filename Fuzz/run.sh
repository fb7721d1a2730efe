#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted files, the IDX reader (raw and gzip), the .npy and CSV readers and the checkpoint
# reader (safetensors, then the network it describes), with libFuzzer and AddressSanitizer:
#   bash Fuzz/run.sh [seconds per harness, default 60]     (FUZZ_HARNESSES="csv npy" runs only those)
# Builds into .build-fuzz/ (MLP_FUZZ=1 adds the harness targets to the package), starts from the seeds in
# Fuzz/corpus/, keeps what libFuzzer finds new in .build-fuzz/corpus-*, writes any crashing input to
# Fuzz/findings/, and prints each harness's executions and findings. Exits non-zero if anything crashed.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
export MLP_FUZZ=1
flags=(--build-path .build-fuzz -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
mkdir -p .build-fuzz
for product in FuzzIDX FuzzNumPy FuzzCSV FuzzCheckpoint; do
    swift build "${flags[@]}" --product "$product" > ".build-fuzz/build-$product.log" 2>&1 || { cat ".build-fuzz/build-$product.log"; exit 1; }
done
bin="$(swift build "${flags[@]}" --show-bin-path)"
mkdir -p Fuzz/findings
status=0
for harness in ${FUZZ_HARNESSES:-idx npy csv checkpoint}; do
    case "$harness" in
        idx) executable="$bin/FuzzIDX"; maxlen=8192 ;;
        npy) executable="$bin/FuzzNumPy"; maxlen=4096 ;;
        csv) executable="$bin/FuzzCSV"; maxlen=4096 ;;
        checkpoint) executable="$bin/FuzzCheckpoint"; maxlen=32768 ;;
    esac
    work=".build-fuzz/corpus-$harness"
    mkdir -p "$work"
    log=".build-fuzz/fuzz-$harness.log"
    "$executable" "$work" "Fuzz/corpus/$harness" -max_total_time="$seconds" -max_len="$maxlen" \
        -rss_limit_mb=4096 -artifact_prefix="Fuzz/findings/$harness-" -print_final_stats=1 >"$log" 2>&1
    code=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    found=$(ls Fuzz/findings/ 2>/dev/null | grep -c "^$harness-" || true)
    echo "$harness: $runs executions (-max_total_time=$seconds), corpus $(ls "$work" | wc -l) inputs, exit $code, $found finding(s) in Fuzz/findings/"
    if [ "$code" -ne 0 ]; then status=1; grep -E "ERROR|SUMMARY|Fatal error" "$log" | head -5; fi
done
exit "$status"
