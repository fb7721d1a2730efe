"""Shared pieces of the peer benchmarks: arguments, MNIST loading, the workloads, timing and the result line.

Every peer trains the same MLP (ReLU hidden layers, softmax cross-entropy), with Adam (lr 1e-3, PyTorch's
defaults otherwise), He-normal weights and zero biases, float32, on the MNIST training set held in memory
(on the device for GPU peers) before timing, with a fresh shuffle every epoch and the last partial batch
dropped. It prints one JSON object per workload on standard output; `mlp bench --peers` reads them.
"""
import argparse
import gzip
import json
import os
import statistics
import time

import numpy as np

WORKLOADS = {
    "small-128": ([784, 512, 256, 10], 128),
    "small-1024": ([784, 512, 256, 10], 1024),
    "wide-1024": ([784, 4096, 4096, 10], 1024),
    # Not in BENCHMARKS.md: small-128's depth with almost no arithmetic, to measure each pipeline's fixed cost a step.
    "latency-128": ([784, 16, 16, 10], 128),
}


def parse_args(description, extra=None):
    """The arguments every peer takes; `extra(parser)` adds a peer's own."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default="small-128,small-1024")
    p.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    p.add_argument("--repeats", type=int, default=3, help="timed runs (the median is reported)")
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "Data", "mnist"))
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    p.add_argument("--seed", type=int, default=0)
    if extra:
        extra(p)
    return p.parse_args()


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(os.path.join(directory, stem + ".gz"))


def load_mnist(directory):
    """(train_x float32 [60000, 784] in [0, 1], train_y int32, test_x, test_y)."""
    def images(stem):
        return (read_idx(find(directory, stem)).reshape(-1, 784).astype(np.float32) / np.float32(255))

    def labels(stem):
        return read_idx(find(directory, stem)).astype(np.int32)

    return (images("train-images-idx3-ubyte"), labels("train-labels-idx1-ubyte"),
            images("t10k-images-idx3-ubyte"), labels("t10k-labels-idx1-ubyte"))


def he_init(layers, seed):
    """Weights [out, in] from N(0, 2/in), biases zero, float32 (PyTorch's Linear layout)."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(layers[:-1], layers[1:]):
        w = (rng.standard_normal((fan_out, fan_in)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        params.append((w, np.zeros(fan_out, np.float32)))
    return params


def timed_runs(run_epoch, epochs, repeats, samples_per_epoch, steps_per_epoch, sync=lambda: None):
    """Calls run_epoch() epochs × repeats times; returns samples/s per repeat and the median step time (µs)."""
    rates, steps = [], []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(epochs):
            run_epoch()
        sync()
        seconds = time.perf_counter() - start
        rates.append(samples_per_epoch * epochs / seconds)
        steps.append(seconds / (steps_per_epoch * epochs) * 1e6)
    return rates, statistics.median(steps)


def report(implementation, workload, precision, rates, step_us, accuracy, note=""):
    print(json.dumps({
        "implementation": implementation, "workload": workload, "precision": precision,
        "samples_per_second": rates, "step_microseconds": step_us, "test_accuracy": accuracy, "note": note,
    }), flush=True)
