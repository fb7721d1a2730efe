#!/usr/bin/env python3
"""Writes the CSV of the loading benchmark: ROWS rows of COLUMNS float features and an integer class column, as
NumPy's random numbers printed with 7 significant digits (about 1 GB for the default 1,000,000 × 100). With
--regression the last column is a real-valued target, `value`, a smooth function of three features in the
thousands, with noise.

    python3 Benchmarks/data/make_table.py OUT.csv [--rows 1000000] [--columns 100] [--seed 0] [--regression]

Not committed: the benchmark makes it where it runs (`bash Benchmarks/data/load_bench.sh`).
"""
import argparse

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--columns", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--regression", action="store_true")
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    header = ",".join(f"f{j}" for j in range(args.columns)) + (",value\n" if args.regression else ",label\n")
    scales = 10.0 ** rng.integers(-3, 4, args.columns)
    with open(args.out, "w") as f:
        f.write(header)
        for start in range(0, args.rows, 50_000):
            n = min(50_000, args.rows - start)
            x = rng.standard_normal((n, args.columns)) * scales
            u = x[:, :3] / scales[:3]
            if args.regression:
                y = 5000 + 1000 * (u[:, 0] + np.sin(2 * u[:, 1]) + 0.5 * u[:, 2] ** 2) + 100 * rng.standard_normal(n)
            else:
                y = (u[:, 0] + u[:, 1] > 0).astype(np.int64) + (u[:, 2] > 1)
            body = np.column_stack([x, y])
            # One format for the floats; an integer for a class.
            fmt = ",".join(["%.7g"] * args.columns + ["%.7g" if args.regression else "%d"])
            np.savetxt(f, body, fmt=fmt)


if __name__ == "__main__":
    main()
