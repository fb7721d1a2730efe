#!/usr/bin/env bash
# Runs on the GPU host, from the repository root, with the static release binary carried as device/mlp.xz or .gz
# (built with `swift build -c release --static-swift-stdlib`, stripped, compressed; its commit in device/COMMIT):
#   bash Benchmarks/gpu/run.sh check        mlp check (fp32, tf32 and bf16) and a short training run
#   bash Benchmarks/gpu/run.sh bench        mlp bench of the cuda backend against the GPU peers, fp32 and tf32
#                                           (BENCH_PRECISIONS), every variant of each peer (BENCH_PEERS=torch,jax,cupy)
#   bash Benchmarks/gpu/run.sh owndata      a generated table (CSV, 20,000 × 50, 3 classes) and a regression one (two
#                                           losses) trained on the cuda and cpu backends, fp32 and tf32: their epochs'
#                                           losses side by side; mlp check fp32 (its regression checks included)
#   bash Benchmarks/gpu/run.sh stream       issue 24: mlp check's streamed runs, the link's peak, mlp bench --stream
#                                           beside resident, a set too large for --device-memory-limit trained streamed,
#                                           and Ctrl-C while its copies are in flight
#   bash Benchmarks/gpu/run.sh bf16         issue 27: mlp check in bf16 and fp32, the default mlp train in bf16, then
#                                           mlp bench of the cuda backend in tf32 and bf16 against the peers in both
#                                           (BF16_PEERS, jax,torch by default; none: no peers; PyTorch:
#                                           TORCH_MLP_VARIANTS, "cuda graph" by default; JAX: JAX_MLP_LAYOUTS,
#                                           JAX_MLP_FORMULATIONS), every workload, and the products' rates in bf16 and
#                                           TF32 (torch.matmul; not with BF16_QUICK=1). Results packed after each part.
#   bash Benchmarks/gpu/run.sh torch-autotune  PyTorch's compiled step with --compile-mode max-autotune (Triton's tuned
#                                           products; minutes of compiling), small-128 and small-1024, fp32 and tf32
#   bash Benchmarks/gpu/run.sh profile      per-kernel times of training steps (Nsight Compute)
#   bash Benchmarks/gpu/run.sh kernels      Nsight Compute's full report on our own kernels (small-128, fp32)
#   bash Benchmarks/gpu/run.sh kernels-wide the same for the output layer's kernel in wide-1024 TF32 training
#                                           (output_layer_wide, or output_layer_loss with MLP_CUDA_OFF=wide-output)
#   bash Benchmarks/gpu/run.sh sanitize-wide output_layer_wide's training steps and evaluations under compute-sanitizer
#   bash Benchmarks/gpu/run.sh firststep    where the first epoch of mlp train goes (-v: cuBLASLt's set-up at start-up,
#                                           planning, first runs, recordings)
#   bash Benchmarks/gpu/run.sh strategies   the cuda backend alone, fp32 and tf32, with each of its strategies turned
#                                           off in turn (MLP_CUDA_OFF=..., and the heuristic's algorithms: MLP_CUDA_TUNE=0)
#   bash Benchmarks/gpu/run.sh regress      this binary against the one before a change (device/baseline/mlp.xz, its
#                                           commit in device/baseline/COMMIT), side by side in alternating rounds, fp32
#                                           and tf32 (REGRESS_PRECISIONS), JAX beside this binary's first round
#   bash Benchmarks/gpu/run.sh latency      the fixed cost of a step: latency-128 (784-16-16-10) and small-128, ours
#                                           against JAX and PyTorch's CUDA graph
#   bash Benchmarks/gpu/run.sh sanitize [TOOL...]  mlp check under compute-sanitizer's memcheck, racecheck and synccheck
#                                           (or the tools named; SANITIZE_SECONDS, 170 by default, bounds each)
#   bash Benchmarks/gpu/run.sh ab VAR=V...  the cuda backend against JAX on the four workloads (latency-128 included),
#                                           fp32 and tf32, then alone with each VAR=V set in turn (what one change buys)
#   bash Benchmarks/gpu/run.sh trace VAR=V...  each operation's share of a recorded step (MLP_CUDA_TRACE=1), TF32 and
#                                           fp32 (TRACE_PRECISIONS), then with each VAR=V set in turn
#   bash Benchmarks/gpu/run.sh steptune     products chosen inside whole steps (the default) against alone, fp32 and tf32
#   bash Benchmarks/gpu/run.sh cpu          the cpu backend on the host's processors: mlp check, and its first layer's
#                                           products skipping the inputs' zeros against dense (cpu, cpu-dense)
#   bash Benchmarks/gpu/run.sh timeline [VAR=V...]  each kernel of a replayed step on the GPU's clock, no events added
#                                           (CUPTI, through Benchmarks/gpu/timeline/timeline.c), and the recorded graphs'
#                                           nodes (mlp train -v), small-128 and small-1024, fp32 and tf32; then small-128
#                                           with each VAR=V set in turn
# Logs and results go to ./gpu-results, and packed as one gpu-results.tgz into $OUT when it is set (the device tool
# brings back at most 8 files).
set -uo pipefail
out=gpu-results
mkdir -p "$out" .run
# A binary carried as NAME.xz (smaller: two of them fit the device tool's 64 MiB beside the tree) or NAME.gz.
unpack() {
    if [ -f "$1.xz" ]; then
        xz -dc "$1.xz" 2>/dev/null || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1.xz"
    else
        gunzip -c "$1.gz"
    fi
}
unpack device/mlp > .run/mlp && chmod +x .run/mlp   # .run/ is inside the repository: Data/ is found above it
export PYTHONUNBUFFERED=1
# The products' timed algorithm choices, kept with the results (the check mode uses files of its own).
export MLP_CUDA_TUNE_CACHE="${MLP_CUDA_TUNE_CACHE:-$PWD/$out/cublaslt-tuning.json}"
commit="$(cat device/COMMIT 2>/dev/null || echo unknown)"   # written beside mlp.gz when it was built
# mlp bench, naming the binary's commit in its results (the device's copy of the tree has no git).
bench() { .run/mlp bench --commit "$commit" "$@"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.txt"
# What ran when, with which binary: the device's working copy keeps older runs' files beside this one's, and this
# log (with the files' dates) tells them apart.
echo "$(date -u +%FT%TZ) commit $commit: run.sh $*" >> "$out/runs.txt"
case "${1:-check}" in
check)
    .run/mlp check --backend cuda -v 2>&1 | tee "$out/check-fp32.txt"
    .run/mlp check --backend cuda --precision tf32 2>&1 | tee "$out/check-tf32.txt" | tail -4
    .run/mlp check --backend cuda --precision bf16 2>&1 | tee "$out/check-bf16.txt" | tail -4
    # The defaults, twice: the first run times each product's candidates and saves the choices, the second reads them.
    for run in 1 2; do
        MLP_CUDA_TUNE_CACHE="$out/train-tuning.json" .run/mlp train --backend cuda --no-progress -v 2>&1 | tee "$out/train-$run.txt"
    done
    # Reproducibility: the same seed twice, with the choices saved by the first run (the default), timed afresh in
    # each run, and the heuristic's.
    for variant in default MLP_CUDA_TUNE_CACHE=0 MLP_CUDA_TUNE=0; do
        name="${variant%%=*}"
        rm -f "$out/repro-tuning.json"
        for run in 1 2; do
            env MLP_CUDA_TUNE_CACHE="$out/repro-tuning.json" $( [ "$variant" = default ] || echo "$variant" ) \
                .run/mlp train --backend cuda --epochs 2 --seed 3 --quiet --output "$out/repro-$name-$run" >/dev/null 2>&1
        done
        if cmp -s "$out/repro-$name-1/last.safetensors" "$out/repro-$name-2/last.safetensors"; then
            echo "$variant: two runs with the same seed wrote identical checkpoints" | tee -a "$out/repro.txt"
        else
            echo "$variant: two runs with the same seed wrote different checkpoints" | tee -a "$out/repro.txt"
        fi
        rm -rf "$out"/repro-*   # 50 MB of checkpoints: too much to bring back
    done
    MLP_CUDA_TUNE=0 .run/mlp check --backend cuda --precision tf32 > "$out/check-tf32-heuristic.txt" 2>&1
    # Every batch's indices copied to the device ahead of the gather (by default only batches above 4,096 rows,
    # which no recorded step of the checks has).
    MLP_CUDA_OFF=inline-indices .run/mlp check --backend cuda > "$out/check-fp32-copied-indices.txt" 2>&1
    for f in "$out"/check-*.txt; do echo "$f: $(tail -1 "$f")"; done
    (command -v nsys; command -v ncu; ls /usr/local/cuda/bin 2>/dev/null) > "$out/tools.txt" 2>&1
    ;;
profile)
    # Per-kernel GPU times of training steps from Nsight Compute (each kernel replayed alone, caches and clocks as
    # they are: the times without launch gaps),
    # for small-128 and small-1024, fp32 and tf32.
    for precision in fp32 tf32; do
        for batch in 128 1024; do
            ncu --cache-control none --clock-control none --launch-skip 2000 --launch-count 36 --metrics gpu__time_duration.sum --csv \
                .run/mlp train --backend cuda --precision "$precision" --batch-size "$batch" --epochs 1 --quiet \
                > "$out/ncu-$precision-$batch.csv" 2>&1
        done
    done
    ;;
kernels)
    # Nsight Compute's full report on our own kernels in small-128 training steps (fp32): each one's time, its
    # limiter and its stall reasons (details page), and the output layer's kernel's instructions (SASS page).
    # The products' algorithms are timed in a run of their own first: timed under the profiler, which replays each
    # kernel alone, they would be chosen badly (and saved for the modes that follow).
    export MLP_CUDA_TUNE_CACHE="$PWD/$out/kernels-tuning.json"
    .run/mlp train --backend cuda --epochs 1 --quiet > /dev/null 2>&1
    ncu --set full --cache-control none --clock-control none \
        --kernel-name regex:'output_layer_loss|optimizer_update|gather_batch|activation_backward|transpose' \
        --launch-skip 200 --launch-count 8 --export "$out/kernels" --force-overwrite \
        .run/mlp train --backend cuda --epochs 1 --quiet > "$out/kernels-run.txt" 2>&1
    ncu --import "$out/kernels.ncu-rep" --page details > "$out/kernels-details.txt" 2>&1
    ncu --import "$out/kernels.ncu-rep" --page source --print-source sass --csv --kernel-name output_layer_loss \
        --launch-count 1 > "$out/output-layer-sass.csv" 2>&1
    ;;
kernels-wide)
    # The same full report on the output layer's kernel alone in wide-1024 TF32 training (784-4096-4096-10, batch
    # 1024): its 4096x10 weights staged in opted-in shared memory (output_layer_wide: 8 rows a block; with
    # MLP_CUDA_OFF=wide-output output_layer_loss: a warp a row). Past the warm-up's launches.
    export MLP_CUDA_TUNE_CACHE="$PWD/$out/kernels-wide-tuning.json"
    wide=(--layers 784,4096,4096,10 --batch-size 1024 --precision tf32 --epochs 1 --quiet)
    .run/mlp train --backend cuda "${wide[@]}" > /dev/null 2>&1
    ncu --set full --cache-control none --clock-control none --kernel-name regex:'output_layer_(loss|wide)$' \
        --launch-skip 40 --launch-count 2 --export "$out/kernels-wide" --force-overwrite \
        .run/mlp train --backend cuda "${wide[@]}" > "$out/kernels-wide-run.txt" 2>&1
    ncu --import "$out/kernels-wide.ncu-rep" --page details > "$out/kernels-wide-details.txt" 2>&1
    ncu --import "$out/kernels-wide.ncu-rep" --page source --print-source sass --csv --launch-count 1 \
        > "$out/kernels-wide-sass.csv" 2>&1
    ;;
sanitize-wide)
    # output_layer_wide (ten outputs and 2,050 inputs, ReLU then tanh below it) under compute-sanitizer: training
    # steps run directly, recorded and replayed, in batches of 19 (two groups of 8 rows and one of 3) and a last of
    # 1, and evaluations.
    for tool in memcheck racecheck synccheck; do
        for activation in relu tanh; do
            MLP_CUDA_TUNE=0 timeout 170 compute-sanitizer --tool "$tool" --error-exitcode 9 .run/mlp train --backend cuda \
                --layers 784,2050,10 --activation "$activation" --batch-size 19 --epochs 1 --train-samples 400 \
                --test-samples 100 --no-progress > "$out/sanitize-wide-$tool-$activation.txt" 2>&1
            echo "$tool $activation: exit status $? ($(tail -1 "$out/sanitize-wide-$tool-$activation.txt"))" | tee -a "$out/sanitize-wide.txt"
        done
    done
    ;;
firststep)
    # Where a training run's first epoch goes: with -v the backend logs each product's planning and algorithm
    # choice, each step shape's first (unrecorded) run and its graph recordings. Twice: timing afresh, then with
    # the tuning file the first run wrote.
    rm -f "$out/firststep-tuning.json"
    for run in 1 2; do
        MLP_CUDA_TUNE_CACHE="$out/firststep-tuning.json" .run/mlp train --backend cuda --no-progress -v 2>&1 \
            | grep -E "heuristic query|product |first step|recorded as|epoch 1/|epoch 2/|test accuracy" | tee "$out/firststep-$run.txt"
    done
    ;;
strategies)
    for precision in fp32 tf32; do
        for variant in default MLP_CUDA_OFF=streams MLP_CUDA_TUNE=0 MLP_CUDA_OFF=fusion MLP_CUDA_OFF=graphs MLP_CUDA_OFF=pdl \
                       MLP_CUDA_OFF=step-tuning MLP_CUDA_OFF=gather-ahead; do
            echo "== $precision $variant" | tee -a "$out/strategies-$precision.txt"
            env $( [ "$variant" = default ] || echo "$variant" ) .run/mlp bench --commit "$commit" --backends cuda \
                --workloads small-128,small-1024,wide-1024 --repeats 3 --precision "$precision" \
                --output "$out/strategies-$precision-${variant//=/-}" 2>&1 | tee -a "$out/strategies-$precision.txt"
        done
    done
    ;;
latency)
    bench --backends cuda --workloads latency-128,small-128 --repeats 3 --precision fp32 \
        --peers --peer-device cuda --peer-list jax,torch --output "$out/latency" 2>&1 | tee "$out/latency.txt"
    ;;
sanitize)
    # Every kernel `mlp check` runs (ours, our product kernels, cuBLASLt's), instrumented: out-of-bounds and
    # misaligned accesses, shared-memory races, misused barriers. The heuristic's algorithms (MLP_CUDA_TUNE=0):
    # timing each product's candidates would multiply the launches of an already slow run.
    shift
    for tool in ${@:-memcheck racecheck synccheck}; do
        MLP_CUDA_TUNE=0 timeout "${SANITIZE_SECONDS:-170}" compute-sanitizer --tool "$tool" --error-exitcode 9 .run/mlp check --backend cuda \
            > "$out/sanitize-$tool.txt" 2>&1
        echo "$tool: exit status $? ($(grep -c '^ok' "$out/sanitize-$tool.txt") checks ok; $(tail -1 "$out/sanitize-$tool.txt"))" | tee -a "$out/sanitize.txt"
    done
    ;;
ab)
    shift
    for precision in fp32 tf32; do
        bench --backends cuda --workloads latency-128,small-128,small-1024,wide-1024 --repeats 3 \
            --precision "$precision" --peers --peer-device cuda --peer-list jax \
            --output "$out/ab-$precision" 2>&1 | tee "$out/ab-$precision.txt"
        for variant in "$@"; do
            echo "== $precision $variant" | tee -a "$out/ab-$precision.txt"
            env "$variant" .run/mlp bench --commit "$commit" --backends cuda --workloads latency-128,small-128,small-1024,wide-1024 \
                --repeats 3 --precision "$precision" --output "$out/ab-$precision-${variant//=/-}" 2>&1 | tee -a "$out/ab-$precision.txt"
        done
    done
    ;;
trace)
    # Where a step's time goes (MLP_CUDA_TRACE=1: timing events between the operations of the recorded step, which
    # lengthen it by ~2 µs each), the cuda backend alone, TF32 then fp32, then with each VAR=V set in turn.
    shift
    for precision in ${TRACE_PRECISIONS:-tf32 fp32}; do
        for variant in default "$@"; do
            echo "== $precision $variant" | tee -a "$out/trace-$precision.txt"
            env MLP_CUDA_TRACE=1 $( [ "$variant" = default ] || echo "$variant" ) .run/mlp bench --commit "$commit" --backends cuda \
                --workloads small-128,small-1024,wide-1024 --repeats 1 --precision "$precision" \
                --output "$out/trace-$precision-${variant//=/-}" 2>&1 | tee -a "$out/trace-$precision.txt"
        done
    done
    ;;
timeline)
    # CUPTI's library and header: the toolkit's, else a pip wheel's (PyTorch brings one).
    library=$(find /usr/local/cuda/ /usr/local/lib/python3* /usr/lib/python3* -name 'libcupti.so*' 2>/dev/null | head -1)
    header=$(find /usr/local/cuda/ /usr/local/lib/python3* /usr/lib/python3* -name cupti.h 2>/dev/null | head -1)
    echo "CUPTI: $library, $header" | tee "$out/timeline-build.txt"
    gcc -O2 -shared -fPIC Benchmarks/gpu/timeline/timeline.c -I/usr/local/cuda/include -I"$(dirname "$header")" \
        "$library" -Wl,-rpath,"$(dirname "$library")" -o .run/libtimeline.so >> "$out/timeline-build.txt" 2>&1 \
        || { cat "$out/timeline-build.txt"; exit 1; }
    shift
    for precision in fp32 tf32; do
        # The nodes of each recorded step (-v logs them when a step is recorded).
        .run/mlp train --backend cuda --precision "$precision" --epochs 1 --no-progress -v > "$out/graph-$precision.txt" 2>&1
        # small-128 and small-1024 as they are, then small-128 with each VAR=V set in turn.
        for run in default:small-128 default:small-1024 "${@/%/:small-128}"; do
            variant="${run%:*}" workload="${run##*:}"
            name="$precision-$workload$( [ "$variant" = default ] || echo "-${variant//=/-}" )"
            settings=$( [ "$variant" = default ] || echo "$variant" )
            env $settings .run/mlp bench --commit "$commit" --backends cuda --workloads "$workload" --repeats 1 --precision "$precision" \
                --output "$out/untraced-$name" 2>&1 | grep "µs/step" | sed 's/^/without CUPTI: /' | tee "$out/timeline-$name-report.txt"
            env $settings CUDA_INJECTION64_PATH="$PWD/.run/libtimeline.so" MLP_TIMELINE_OUT="$out/timeline-$name.txt" \
                .run/mlp bench --commit "$commit" --backends cuda --workloads "$workload" --repeats 1 --precision "$precision" \
                --output "$out/traced-$name" 2>&1 | grep "µs/step" | sed 's/^/with CUPTI:    /' | tee -a "$out/timeline-$name-report.txt"
            python3 Benchmarks/gpu/timeline/timeline.py "$out/timeline-$name.txt" 2>&1 | tee -a "$out/timeline-$name-report.txt"
            gzip -f "$out/timeline-$name.txt"
        done
    done
    ;;
steptune)
    # The products' algorithms chosen inside whole steps (the default) against chosen alone (MLP_CUDA_OFF=step-tuning),
    # each with a tuning file of its own (a step's choices overwrite its products' entries), then the default again
    # in a new process that reads its choices from the file. JAX beside the first.
    for precision in fp32 tf32; do
        for run in step:"MLP_CUDA_OFF=" alone:"MLP_CUDA_OFF=step-tuning" step-again:"MLP_CUDA_OFF="; do
            name="${run%%:*}" setting="${run#*:}"
            echo "== $precision $name ($setting)" | tee -a "$out/steptune-$precision.txt"
            env "$setting" MLP_CUDA_TUNE_CACHE="$PWD/$out/steptune-${name%-again}-$precision.json" .run/mlp bench --commit "$commit" --backends cuda \
                --workloads latency-128,small-128,small-1024,wide-1024 --repeats 3 --precision "$precision" \
                $( [ "$name" = step ] && echo --peers --peer-device cuda --peer-list jax ) \
                --output "$out/steptune-$precision-$name" 2>&1 | tee -a "$out/steptune-$precision.txt"
        done
    done
    ;;
cpu)
    # The cpu backend on the GPU host's processors: its checks, and its products with the inputs' zeros skipped
    # against dense, in the same rounds (the CPU peers are not installed there).
    lscpu > "$out/lscpu.txt"
    .run/mlp check --backend cpu 2>&1 | tee "$out/check-cpu.txt" | tail -3
    bench --backends cpu,cpu-dense --workloads small-128,small-1024 --repeats 3 --rounds 3 --ops \
        --output "$out/bench-cpu" 2>&1 | tee "$out/bench-cpu.txt" | tail -12
    ;;
regress)
    # The binary before the change and this one, each in its own tuning file (kept apart, as each process would
    # find its own), in alternating rounds so that the card's drift falls on both; JAX beside this binary's first.
    unpack device/baseline/mlp > .run/mlp-before && chmod +x .run/mlp-before
    before="$(cat device/baseline/COMMIT 2>/dev/null || echo unknown)"
    workloads=latency-128,small-128,small-1024,wide-1024
    for precision in ${REGRESS_PRECISIONS:-fp32 tf32}; do
        for round in 1 2; do
            echo "== $precision round $round: before ($before)" | tee -a "$out/regress-$precision.txt"
            MLP_CUDA_TUNE_CACHE="$PWD/$out/regress-before.json" MLP_COMMIT="$before" .run/mlp-before bench --backends cuda \
                --workloads "$workloads" --repeats 3 --precision "$precision" \
                --output "$out/regress-$precision-before-$round" 2>&1 | tee -a "$out/regress-$precision.txt"
            echo "== $precision round $round: after ($commit)" | tee -a "$out/regress-$precision.txt"
            MLP_CUDA_TUNE_CACHE="$PWD/$out/regress-after.json" bench --backends cuda --workloads "$workloads" --repeats 3 \
                --precision "$precision" $( [ "$round" = 1 ] && echo --peers --peer-device cuda --peer-list jax ) \
                --output "$out/regress-$precision-after-$round" 2>&1 | tee -a "$out/regress-$precision.txt"
        done
    done
    python3 Benchmarks/gpu/regress.py "$out" ${REGRESS_PRECISIONS:-fp32 tf32} | tee "$out/regress-summary.txt"
    ;;
bench)
    for precision in ${BENCH_PRECISIONS:-fp32 tf32}; do
        bench --backends cuda --workloads small-128,small-1024,wide-1024 --repeats 3 --profile \
            --precision "$precision" --peers --peer-device cuda --peer-list "${BENCH_PEERS:-torch,jax,cupy}" \
            --output "$out/bench-$precision" 2>&1 | tee "$out/bench-$precision.txt"
    done
    ;;
owndata)
    .run/mlp check --backend cuda 2>&1 | tee "$out/check-fp32.txt" | tail -3
    python3 Benchmarks/data/make_table.py .run/table.csv --rows 20000 --columns 50 --seed 1
    for backend in cpu "cuda --precision fp32" "cuda --precision tf32"; do
        echo "== $backend" | tee -a "$out/owndata.txt"
        .run/mlp train --data .run/table.csv --backend $backend --epochs 3 --batch-size 100 --no-progress 2>&1 | tee -a "$out/owndata.txt"
    done
    python3 Benchmarks/data/make_table.py .run/prices.csv --rows 20000 --columns 20 --seed 2 --regression
    for loss in mse huber; do
        for backend in cpu "cuda --precision fp32" "cuda --precision tf32"; do
            echo "== regression $loss $backend" | tee -a "$out/owndata.txt"
            .run/mlp train --data .run/prices.csv --loss $loss --backend $backend --epochs 3 --batch-size 100 --no-progress 2>&1 | tee -a "$out/owndata.txt"
        done
    done
    ;;
stream)
    # Issue 24: the data streamed from host memory against resident. mlp check's streamed runs (the same weights as
    # resident, bit for bit); the link's peak from pinned memory (PyTorch); mlp bench --stream beside resident, both
    # precisions; a set too large for --device-memory-limit (8,000,000 MNIST-shaped samples, 6.3 GB of bytes) trained
    # one epoch streamed (chosen by the limit) and resident (--resident); Ctrl-C while its copies are in flight.
    .run/mlp check --backend cuda > "$out/check-stream-fp32.txt" 2>&1
    grep -E "streamed|checks passed|failed" "$out/check-stream-fp32.txt"
    python3 Benchmarks/gpu/h2d_peak.py 2>&1 | tee "$out/h2d-peak.txt"
    for precision in fp32 tf32; do
        bench --backends cuda --workloads small-128,small-1024 --repeats 3 --precision "$precision" --stream \
            --output "$out/stream-$precision" 2>&1 | tee "$out/stream-$precision.txt" | grep -E "streamed|^\| small"
    done
    python3 Benchmarks/data/make_large.py .run/large --rows "${STREAM_ROWS:-8000000}" | tee "$out/large.txt"
    large=(--data .run/large/x.npy --labels .run/large/y.npy --backend cuda --batch-size 1024 --no-progress -v)
    for placement in --device-memory-limit=4G --resident; do
        echo "== $placement" | tee -a "$out/large.txt"
        python3 Benchmarks/gpu/max_rss.py .run/mlp train "${large[@]}" --epochs 1 "$placement" 2>&1 \
            | grep -E "data (streamed|resident)|training |epoch |accuracy|max RSS" | tee -a "$out/large.txt"
    done
    # Ctrl-C in the second epoch (the copies in flight): a message, last.safetensors, exit status 130, no hang.
    # stdbuf: the epoch lines reach the file as they are printed.
    rm -rf .run/interrupted
    stdbuf -oL .run/mlp train "${large[@]}" --epochs 20 --stream --output .run/interrupted > "$out/interrupt.txt" 2>&1 &
    pid=$!
    for _ in $(seq 240); do grep -q "^epoch 1/" "$out/interrupt.txt" && break; sleep 0.25; done
    sleep 0.5
    kill -INT "$pid"
    timeout 60 tail --pid="$pid" -f /dev/null || { echo "no exit 60 s after Ctrl-C" >> "$out/interrupt.txt"; kill -9 "$pid"; }
    wait "$pid"
    echo "exit status $?; $(ls .run/interrupted 2>&1 | tr '\n' ' ')" >> "$out/interrupt.txt"
    tail -4 "$out/interrupt.txt"
    ;;
bf16)
    pack() { if [ -n "${OUT:-}" ]; then tar -czf "$OUT/gpu-results.tgz" -C "$out" .; fi; }
    .run/mlp check --backend cuda --precision bf16 > "$out/check-bf16.txt" 2>&1
    grep -v "^ok" "$out/check-bf16.txt" | tail -25
    # The fp32 path's kernels take the bf16 copies' arguments too (null there).
    .run/mlp check --backend cuda > "$out/check-fp32.txt" 2>&1
    tail -1 "$out/check-fp32.txt"
    .run/mlp train --backend cuda --precision bf16 --no-progress 2>&1 | tee "$out/train-bf16.txt" | tail -4
    pack
    peers=(--peers --peer-list "${BF16_PEERS:-jax,torch}" --peer-device cuda)
    [ "${BF16_PEERS:-}" = none ] && peers=()
    TORCH_MLP_VARIANTS="${TORCH_MLP_VARIANTS:-cuda graph}" bench --backends cuda --precision tf32,bf16 \
        --workloads small-128,small-1024,wide-1024 --repeats 3 "${peers[@]}" \
        --output "$out/bench-bf16" 2>&1 | tee "$out/bench-bf16.txt" | grep -E "^\| |peak|cuda"
    pack
    [ -n "${BF16_QUICK:-}" ] || python3 Benchmarks/gpu/matmul_rates.py 2>&1 | tee "$out/matmul-rates.txt"
    ;;
torch-autotune)
    for precision in ${BENCH_PRECISIONS:-fp32 tf32}; do
        python3 Benchmarks/peers/torch_mlp.py --device cuda --precision "$precision" --variants compile \
            --compile-mode max-autotune --workloads small-128,small-1024 --repeats 3 2>&1 \
            | tee "$out/torch-autotune-$precision.txt"
    done
    ;;
esac
if [ -n "${OUT:-}" ]; then tar -czf "$OUT/gpu-results.tgz" -C "$out" .; fi
