#!/usr/bin/env python3
"""Writes a large classification set for the streaming benchmark (issue 24): ROWS MNIST-shaped samples as uint8
arrays, x.npy [ROWS, 784] and y.npy [ROWS] (int64), the bundled MNIST training digits repeated in a shuffled order
and each copy shifted by up to two pixels, so that the set is real digits, not noise, and no two copies are the same
picture. ROWS × 784 bytes: 8,000,000 rows are 6.3 GB.

    python3 Benchmarks/data/make_large.py DIR [--rows 8000000] [--seed 0]

Written through memory maps, a chunk at a time: the host needs no more memory than a chunk beside the files.
"""
import argparse
import gzip
import os

import numpy as np


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("--rows", type=int, default=8_000_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    root = os.path.join(os.path.dirname(__file__), "..", "..", "Data", "mnist")
    images = idx(os.path.join(root, "train-images-idx3-ubyte.gz"))
    labels = idx(os.path.join(root, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    os.makedirs(args.dir, exist_ok=True)
    x = np.lib.format.open_memmap(os.path.join(args.dir, "x.npy"), "w+", np.uint8, (args.rows, 784))
    y = np.lib.format.open_memmap(os.path.join(args.dir, "y.npy"), "w+", np.int64, (args.rows,))
    rng = np.random.default_rng(args.seed)
    n = len(images)
    for start in range(0, args.rows, n):
        count = min(n, args.rows - start)
        order = rng.permutation(n)[:count]
        dy, dx = rng.integers(-2, 3, 2)
        x[start:start + count] = np.roll(images[order], (dy, dx), axis=(1, 2)).reshape(count, 784)
        y[start:start + count] = labels[order]
    x.flush()
    y.flush()
    print(f"wrote {args.rows:,} samples: {x.nbytes / 1e9:.2f} GB of values in {args.dir}/x.npy, labels in y.npy")


if __name__ == "__main__":
    main()
