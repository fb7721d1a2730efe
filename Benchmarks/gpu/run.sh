#!/usr/bin/env bash
# Runs on the GPU host, from the repository root, with the static release binary carried as device/mlp.gz
# (built with `swift build -c release --static-swift-stdlib`, stripped, gzipped; its commit in device/COMMIT):
#   bash Benchmarks/gpu/run.sh check        mlp check (fp32 and tf32) and a short training run
#   bash Benchmarks/gpu/run.sh bench        mlp bench of the cuda backend against the GPU peers, fp32 and tf32
# Logs and results go to $OUT (or ./gpu-results).
set -uo pipefail
out="${OUT:-gpu-results}"
mkdir -p "$out" .run
gunzip -c device/mlp.gz > .run/mlp && chmod +x .run/mlp   # .run/ is inside the repository: Data/ is found above it
export PYTHONUNBUFFERED=1
export MLP_COMMIT="$(cat device/COMMIT 2>/dev/null || echo unknown)"   # written beside mlp.gz when it was built
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$out/gpu.txt"
case "${1:-check}" in
check)
    .run/mlp check --backend cuda -v 2>&1 | tee "$out/check-fp32.txt"
    .run/mlp check --backend cuda --precision tf32 2>&1 | tee "$out/check-tf32.txt" | tail -4
    .run/mlp train --backend cuda --epochs 2 --no-progress -v 2>&1 | tee "$out/train.txt"
    ;;
bench)
    for precision in fp32 tf32; do
        .run/mlp bench --backends cuda --workloads small-128,small-1024,wide-1024 --repeats 3 --profile \
            --precision "$precision" --peers --peer-device cuda --peer-list torch,jax,cupy \
            --output "$out/bench-$precision" 2>&1 | tee "$out/bench-$precision.txt"
    done
    ;;
esac
