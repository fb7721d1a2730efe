#!/usr/bin/env bash
# Runs on the GPU host, from the repository root, with the static release binary carried as device/mlp.gz
# (built with `swift build -c release --static-swift-stdlib`, stripped, gzipped; its commit in device/COMMIT):
#   bash Benchmarks/gpu/run.sh check        mlp check (fp32 and tf32) and a short training run
#   bash Benchmarks/gpu/run.sh bench        mlp bench of the cuda backend against the GPU peers, fp32 and tf32
#   bash Benchmarks/gpu/run.sh strategies   the cuda backend alone, fp32 and tf32, with each of its strategies turned
#                                           off in turn (side stream, algorithm timing, epilogues, cuBLASLt, graphs)
# Logs and results go to ./gpu-results, and packed as one gpu-results.tgz into $OUT when it is set (the device tool
# brings back at most 8 files).
set -uo pipefail
out=gpu-results
mkdir -p "$out" .run
gunzip -c device/mlp.gz > .run/mlp && chmod +x .run/mlp   # .run/ is inside the repository: Data/ is found above it
export PYTHONUNBUFFERED=1
export MLP_COMMIT="$(cat device/COMMIT 2>/dev/null || echo unknown)"   # written beside mlp.gz when it was built
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.txt"
case "${1:-check}" in
check)
    .run/mlp check --backend cuda -v 2>&1 | tee "$out/check-fp32.txt"
    .run/mlp check --backend cuda --precision tf32 2>&1 | tee "$out/check-tf32.txt" | tail -4
    .run/mlp train --backend cuda --no-progress -v 2>&1 | tee "$out/train.txt"
    ;;
strategies)
    for precision in fp32 tf32; do
        for variant in default MLP_CUDA_STREAMS=1 MLP_CUDA_TUNE=0 MLP_CUDA_FUSE=0 MLP_CUDA_LT=0 MLP_CUDA_GRAPH=0; do
            echo "== $precision $variant" | tee -a "$out/strategies-$precision.txt"
            env $( [ "$variant" = default ] || echo "$variant" ) .run/mlp bench --backends cuda \
                --workloads small-128,small-1024,wide-1024 --repeats 3 --precision "$precision" \
                --output "$out/strategies-$precision-${variant%%=*}" 2>&1 | tee -a "$out/strategies-$precision.txt"
        done
    done
    ;;
bench)
    for precision in fp32 tf32; do
        .run/mlp bench --backends cuda --workloads small-128,small-1024,wide-1024 --repeats 3 --profile \
            --precision "$precision" --peers --peer-device cuda --peer-list torch,jax,cupy \
            --output "$out/bench-$precision" 2>&1 | tee "$out/bench-$precision.txt"
    done
    ;;
esac
if [ -n "${OUT:-}" ]; then tar -czf "$OUT/gpu-results.tgz" -C "$out" .; fi
