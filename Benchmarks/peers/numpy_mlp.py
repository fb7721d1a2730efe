#!/usr/bin/env python3
"""The original study's approach: a vectorised NumPy MLP with hand-written backward pass and Adam.

    python3 Benchmarks/peers/numpy_mlp.py --workloads small-128,small-1024 --epochs 1 --repeats 3
"""
import numpy as np

import common


def main():
    args = common.parse_args(__doc__)
    train_x, train_y, test_x, test_y = common.load_mnist(args.data)
    for name in args.workloads.split(","):
        layers, batch = common.WORKLOADS[name]
        params = [list(p) for p in common.he_init(layers, args.seed)]
        m = [[np.zeros_like(w), np.zeros_like(b)] for w, b in params]
        v = [[np.zeros_like(w), np.zeros_like(b)] for w, b in params]
        lr, b1, b2, eps = np.float32(1e-3), np.float32(0.9), np.float32(0.999), np.float32(1e-8)
        rng = np.random.default_rng(args.seed + 1)
        steps = len(train_x) // batch
        t = [0]

        def step(x, y):
            acts = [x]
            for i, (w, b) in enumerate(params):
                z = acts[-1] @ w.T + b
                acts.append(np.maximum(z, 0) if i < len(params) - 1 else z)
            logits = acts[-1]
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            grad = e / e.sum(axis=1, keepdims=True)
            grad[np.arange(len(y)), y] -= 1
            grad /= np.float32(len(y))
            t[0] += 1
            c1, c2 = 1 - b1 ** t[0], 1 - b2 ** t[0]
            for i in reversed(range(len(params))):
                w, b = params[i]
                gw, gb = grad.T @ acts[i], grad.sum(axis=0)
                if i > 0:
                    grad = (grad @ w) * (acts[i] > 0)
                for j, g in enumerate((gw, gb)):
                    m[i][j] = b1 * m[i][j] + (1 - b1) * g
                    v[i][j] = b2 * v[i][j] + (1 - b2) * g * g
                    params[i][j] -= lr * (m[i][j] / c1) / (np.sqrt(v[i][j] / c2) + eps)

        def epoch():
            order = rng.permutation(len(train_x))
            for s in range(steps):
                idx = order[s * batch:(s + 1) * batch]
                step(train_x[idx], train_y[idx])

        epoch()  # warm-up: one epoch, not timed, as every implementation takes (the accuracy then follows the same epochs)
        rates, step_us = common.timed_runs(epoch, args.epochs, args.repeats, steps * batch, steps)
        x = test_x
        for i, (w, b) in enumerate(params):
            x = x @ w.T + b
            if i < len(params) - 1:
                x = np.maximum(x, 0)
        accuracy = float((x.argmax(axis=1) == test_y).mean())
        common.report("numpy", name, "fp32", rates, step_us, accuracy, f"NumPy {np.__version__}")


if __name__ == "__main__":
    main()
