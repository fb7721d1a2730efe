#!/usr/bin/env bash
# Builds the release archive of the `mlp` tool for this machine's Linux architecture:
#   bash Scripts/release.sh            → dist/mlp-<version>-linux-<arch>.tar.gz and its .sha256
# The archive holds one folder: the static `mlp` (Swift runtime linked in, stripped; it needs only glibc,
# libstdc++, libm and libz), the bundled MNIST under Data/ (where `mlp` finds it, beside the binary), the Python
# peers of `mlp bench --peers`, the SLURM scripts, README.md, LICENSE and SHA256SUMS of every file in it. Unpack it anywhere and run `./mlp`.
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(sed -n 's/.*static let version = "\(.*\)".*/\1/p' Sources/mlp/MLPTool.swift)"
name="mlp-$version-linux-$(uname -m)"
swift build -c release --static-swift-stdlib
binary="$(swift build -c release --static-swift-stdlib --show-bin-path)/mlp"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
folder="$stage/$name"
mkdir -p "$folder/Data" "$folder/slurm" "$folder/Benchmarks"
strip -o "$folder/mlp" "$binary"
cp -R Data/mnist "$folder/Data/mnist"
cp Scripts/slurm/*.sbatch "$folder/slurm/"
cp -R Benchmarks/peers "$folder/Benchmarks/peers"   # `mlp bench --peers` finds them beside the binary
rm -rf "$folder/Benchmarks/peers/__pycache__"
cp README.md LICENSE "$folder/"
(cd "$folder" && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
mkdir -p dist
tar -C "$stage" -czf "dist/$name.tar.gz" "$name"
(cd dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
echo "dist/$name.tar.gz"
