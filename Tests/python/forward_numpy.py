#!/usr/bin/env python3
"""Reads an `mlp` checkpoint with safetensors' NumPy loader and evaluates it on MNIST test images in NumPy.

Usage: forward_numpy.py CHECKPOINT DATA_DIR [COUNT]
Prints one line: `correct N of M`. Used by the Swift test suite to show that checkpoints are plain safetensors
files that other tools read, with PyTorch's nn.Linear layout (weight [out, in], bias [out]).
"""
import json
import os
import sys

import numpy as np

# The peers' IDX reader (Benchmarks/peers/common.py), one copy for both.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Benchmarks", "peers"))
from common import read_idx  # noqa: E402
from safetensors.numpy import load_file
from safetensors import safe_open



def main():
    checkpoint, data_dir = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    tensors = load_file(checkpoint)
    with safe_open(checkpoint, framework="numpy") as f:
        metadata = f.metadata()
    config = json.loads(metadata["configuration"])
    sizes = [int(s) for s in metadata["layers"].split(",")]
    activation = metadata["activation"]
    norm = config["normalization"]

    images = read_idx(f"{data_dir}/t10k-images-idx3-ubyte.gz")[:count]
    labels = read_idx(f"{data_dir}/t10k-labels-idx1-ubyte.gz")[:count]
    x = images.reshape(len(images), -1).astype(np.float32) * np.float32(norm["scale"]) + np.float32(norm["shift"])
    layers = len(sizes) - 1
    for l in range(layers):
        w = tensors[f"layers.{l}.weight"]
        b = tensors[f"layers.{l}.bias"]
        assert w.shape == (sizes[l + 1], sizes[l]) and b.shape == (sizes[l + 1],)
        x = x @ w.T + b
        if l < layers - 1:
            x = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh,
                 "sigmoid": lambda v: 1 / (1 + np.exp(-v))}[activation](x)
    correct = int((x.argmax(axis=1) == labels).sum())
    print(f"correct {correct} of {len(labels)}")


if __name__ == "__main__":
    main()
