#!/usr/bin/env python3
"""Loading a large CSV table: `mlp` against pandas.read_csv, side by side, in alternating rounds.

    python3 Benchmarks/data/load_bench.py [--rows 1000000] [--columns 100] [--rounds 3] [--output DIR]

Makes the table with make_table.py where it is missing (--file, about 1 GB by default), then times, each in a fresh
process so that each one's peak resident memory is its own:
  mlp             `mlp data info --data FILE` (its "loaded in" line: reading, parsing, numbering the classes);
  pandas c        pandas.read_csv(FILE, engine="c", dtype=np.float32) (the C parser; float32, as the features train);
  pandas pyarrow  the same with engine="pyarrow" (Arrow's multithreaded parser), where pyarrow is installed.
The file is in the page cache for every run (it was just written, or read by the round before). Reports the median
seconds, MB/s and the largest peak RSS; the Python interpreter's own RSS with pandas imported is reported beside.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

PANDAS = """
import sys, time, numpy as np, pandas as pd
engine = sys.argv[2]
start = time.perf_counter()
frame = pd.read_csv(sys.argv[1], engine=engine, dtype=np.float32)
print(time.perf_counter() - start, frame.shape[0], frame.shape[1])
"""


def measured(command):
    """Runs a command in a child process: its standard output, its peak resident memory (MB) and the seconds it took."""
    start = time.perf_counter()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.close(r)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.execvp(command[0], command)
    os.close(w)
    chunks = []
    while True:
        data = os.read(r, 1 << 16)
        if not data:
            break
        chunks.append(data)
    os.close(r)
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {status}")
    return b"".join(chunks).decode(), usage.ru_maxrss / 1024, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--columns", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--file", default="/tmp/mlp-load-bench.csv")
    p.add_argument("--mlp", default=os.path.join(ROOT, ".build", "release", "mlp"))
    p.add_argument("--output", help="a directory for results.json and results.md")
    args = p.parse_args()
    if not os.path.exists(args.file):
        subprocess.check_call([sys.executable, os.path.join(HERE, "make_table.py"), args.file, "--rows", str(args.rows),
                               "--columns", str(args.columns)])
    size_mb = os.path.getsize(args.file) / 1e6
    try:
        import pyarrow  # noqa: F401
        engines = ["c", "pyarrow"]
    except ImportError:
        engines = ["c"]
    _, baseline_rss, _ = measured([sys.executable, "-c", "import numpy, pandas"])
    runs = {"mlp": [], **{f"pandas {e}": [] for e in engines}}
    for _ in range(args.rounds):
        out, rss, _ = measured([args.mlp, "data", "info", "--data", args.file])
        seconds = float(next(l for l in out.splitlines() if l.startswith("loaded in")).split()[2])
        runs["mlp"].append((seconds, rss))
        for e in engines:
            out, rss, _ = measured([sys.executable, "-c", PANDAS, args.file, e])
            runs[f"pandas {e}"].append((float(out.split()[0]), rss))
    float_mb = args.rows * args.columns * 4 / 1e6
    results = []
    for name, values in runs.items():
        seconds = statistics.median(v[0] for v in values)
        results.append({"implementation": name, "seconds": [v[0] for v in values], "median_seconds": seconds,
                        "mb_per_second": size_mb / seconds, "peak_rss_mb": max(v[1] for v in values)})
    machine = f"{platform.node()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}"
    lines = [f"Loading {args.file}: {size_mb:.0f} MB, {args.rows:,} rows × {args.columns} float columns and a class "
             f"column ({float_mb:.0f} MB as float32); {args.rounds} rounds, median; {machine}; "
             f"{time.strftime('%Y-%m-%d')}", "",
             "| reader | seconds (median) | MB/s | peak RSS (MB) | peak RSS ÷ float32 data |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['implementation']} | {r['median_seconds']:.2f} | {r['mb_per_second']:.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['peak_rss_mb'] / float_mb:.2f} |")
    lines.append("")
    lines.append(f"(Python with numpy and pandas imported, before reading: {baseline_rss:.0f} MB of the pandas rows' RSS.)")
    print("\n".join(lines))
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "results.json"), "w") as f:
            json.dump({"file_mb": size_mb, "rows": args.rows, "columns": args.columns, "machine": machine,
                       "python_baseline_rss_mb": baseline_rss, "results": results}, f, indent=2)
        with open(os.path.join(args.output, "results.md"), "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
