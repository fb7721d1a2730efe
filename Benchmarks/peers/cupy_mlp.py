#!/usr/bin/env python3
"""The original study's GPU approach: the NumPy MLP written with CuPy arrays on the device.

    python3 Benchmarks/peers/cupy_mlp.py --workloads small-128,small-1024 --epochs 1 --repeats 3 --device cuda
"""
import os

import common

args = common.parse_args(__doc__)
if args.precision == "tf32":
    os.environ["CUPY_TF32"] = "1"  # CuPy's switch for TF32 matrix units; read when cupy is imported

import cupy as cp  # noqa: E402


def main():
    train_x, train_y, test_x, test_y = common.load_mnist(args.data)
    X, Y = cp.asarray(train_x), cp.asarray(train_y)
    for name in args.workloads.split(","):
        layers, batch = common.WORKLOADS[name]
        params = [[cp.asarray(w), cp.asarray(b)] for w, b in common.he_init(layers, args.seed)]
        m = [[cp.zeros_like(w), cp.zeros_like(b)] for w, b in params]
        v = [[cp.zeros_like(w), cp.zeros_like(b)] for w, b in params]
        lr, b1, b2, eps = cp.float32(1e-3), cp.float32(0.9), cp.float32(0.999), cp.float32(1e-8)
        rng = cp.random.RandomState(args.seed + 1)  # CuPy's Generator has no permutation
        steps = len(train_x) // batch
        t = [0]

        def step(idx):
            x, y = X[idx], Y[idx]
            acts = [x]
            for i, (w, b) in enumerate(params):
                z = acts[-1] @ w.T + b
                acts.append(cp.maximum(z, 0) if i < len(params) - 1 else z)
            logits = acts[-1]
            e = cp.exp(logits - logits.max(axis=1, keepdims=True))
            grad = e / e.sum(axis=1, keepdims=True)
            grad[cp.arange(len(idx)), y] -= 1
            grad /= cp.float32(len(idx))
            t[0] += 1
            c1, c2 = cp.float32(1 - 0.9 ** t[0]), cp.float32(1 - 0.999 ** t[0])
            for i in reversed(range(len(params))):
                w, b = params[i]
                gw, gb = grad.T @ acts[i], grad.sum(axis=0)
                if i > 0:
                    grad = (grad @ w) * (acts[i] > 0)
                for j, g in enumerate((gw, gb)):
                    m[i][j] = b1 * m[i][j] + (1 - b1) * g
                    v[i][j] = b2 * v[i][j] + (1 - b2) * g * g
                    params[i][j] -= lr * (m[i][j] / c1) / (cp.sqrt(v[i][j] / c2) + eps)

        def epoch():
            order = rng.permutation(len(train_x))
            for s in range(steps):
                step(order[s * batch:(s + 1) * batch])

        epoch()  # warm-up epoch (kernel compilation), not timed
        sync = cp.cuda.Device().synchronize
        rates, step_us = common.timed_runs(epoch, args.epochs, args.repeats, steps * batch, steps, sync=sync)
        x = cp.asarray(test_x)
        for i, (w, b) in enumerate(params):
            x = x @ w.T + b
            if i < len(params) - 1:
                x = cp.maximum(x, 0)
        accuracy = float((x.argmax(axis=1) == cp.asarray(test_y)).mean())
        common.report("cupy", name, args.precision, rates, step_us, accuracy, f"CuPy {cp.__version__}")


if __name__ == "__main__":
    main()
