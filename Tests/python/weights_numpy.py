#!/usr/bin/env python3
"""Evaluates an `mlp export --format safetensors` file (weights only) on MNIST test images in NumPy, reading its
tensors as `torch.nn.Sequential(Standardize, Linear, activation, Linear, ...)` names them (README: Exporting).

Usage: weights_numpy.py WEIGHTS DATA_DIR [COUNT]
Prints one line: `correct N of M`. Used by the Swift test suite.
"""
import json
import os
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Benchmarks", "peers"))
from common import read_idx  # noqa: E402

ACTIVATIONS = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}


def main():
    path, data_dir = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    t = load_file(path)
    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata()
    assert metadata["format"] == "mlp-weights-1", metadata
    layers = len(metadata["layers"].split(",")) - 1
    activation = ACTIVATIONS[metadata["activation"]]
    images = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))[:count]
    labels = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"))[:count]
    x = images.reshape(len(images), -1).astype(np.float32)
    x = (x - t["0.subtract"]) * t["0.multiply"]          # the Sequential's first module
    for l in range(layers):
        w, b = t[f"{1 + 2 * l}.weight"], t[f"{1 + 2 * l}.bias"]  # torch.nn.Linear: [out, in], [out]
        x = x @ w.T + b
        if l < layers - 1:
            x = activation(x)
    classes = json.loads(metadata["classes"])
    predicted = [int(classes[i]) for i in x.argmax(axis=1)]
    print(f"correct {int(np.sum(np.array(predicted) == labels))} of {len(labels)}")


if __name__ == "__main__":
    main()
