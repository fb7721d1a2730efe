#!/usr/bin/env python3
"""Reads the kernel records that timeline.c wrote and prints where a replayed training step's time goes.

Each recorded step is a CUDA graph; every launch of it runs the same graph nodes. The script finds the graphs that
hold an optimizer update (the training steps; the products timed at start-up run in graphs of their own), cuts the
records into launches (a launch ends where a node repeats), drops each graph's first launches, and prints, for each
node, medians over the remaining launches: when it started and ended after the launch's first kernel started, how
long it ran, and how long the GPU had been without any kernel of the step just before it (the gap a node's launch
costs when it waits for the one before). Then the step's period (first kernel to first kernel of the next launch),
the span of its kernels, and the time between launches.

    python3 timeline.py timeline.txt [--skip N]
"""
import argparse
import collections
import statistics


def short(name, width=64):
    name = name.replace("_kernel__5x_cublas", "").replace("sm80_xmma_gemm_", "xmma80_").replace("sm90_xmma_gemm_", "xmma90_")
    return name if len(name) <= width else name[: width - 1] + "…"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--skip", type=int, help="launches of each graph left out at its start (default: a tenth)")
    args = parser.parse_args()

    records = []
    with open(args.path) as f:
        for line in f:
            if line.startswith("#"):
                print(line.rstrip())
                continue
            parts = line.split(maxsplit=9)
            if len(parts) < 10:
                continue
            start, end, stream, graph, node = (int(p) for p in parts[:5])
            records.append((start, end, stream, graph, node, parts[9].strip(), f"{parts[5]}×{parts[6]}×{parts[7]}"))
    records.sort()
    step_graphs = {r[3] for r in records if r[3] != 0 and "optimizer_update" in r[5]}
    if not step_graphs:
        print("no graph with an optimizer update in", args.path)
        return

    # Launches: consecutive records of one graph, a new launch where a node comes back.
    launches = collections.defaultdict(list)
    current = {}
    for r in records:
        graph = r[3]
        if graph not in step_graphs:
            continue
        launch = current.get(graph)
        if launch is None or any(x[4] == r[4] for x in launch):
            launch = []
            launches[graph].append(launch)
            current[graph] = launch
        launch.append(r)
    size = collections.Counter(len(l) for ls in launches.values() for l in ls).most_common(1)[0][0]
    skip = args.skip if args.skip is not None else max(1, min(len(ls) for ls in launches.values()) // 10)
    kept = [l for ls in launches.values() for l in ls[skip:] if len(l) == size]
    kept.sort(key=lambda l: l[0][0])
    if not kept:
        print("no complete launches after the first", skip)
        return
    print(f"{len(kept)} launches of {size} kernels (graphs {sorted(step_graphs)}; the first {skip} of each left out)")

    spans, periods = [], []
    for i, launch in enumerate(kept):
        spans.append((max(r[1] for r in launch) - launch[0][0]) / 1e3)
        if i + 1 < len(kept):
            periods.append((kept[i + 1][0][0] - launch[0][0]) / 1e3)
    # Node ids differ between the step's two recorded graphs: nodes are matched by their order in the launch instead.
    by_order = collections.defaultdict(lambda: {"start": [], "end": [], "idle": []})
    for launch in kept:
        t0 = launch[0][0]
        ordered = sorted(launch)
        for j, r in enumerate(ordered):
            e = by_order[j]
            e["start"].append((r[0] - t0) / 1e3)
            e["end"].append((r[1] - t0) / 1e3)
            busy_until = max((x[1] for x in ordered[:j]), default=r[0])
            e["idle"].append(max(0, r[0] - busy_until) / 1e3)
            e.setdefault("names", collections.Counter())[r[5]] += 1
            e.setdefault("streams", collections.Counter())[r[2]] += 1
            e["grid"] = r[6]
    streams = sorted({s for e in by_order.values() for s in e["streams"]})
    print(f"{'start':>7} {'end':>7} {'ran':>6} {'idle':>5}  stream  grid        kernel (medians, µs from the launch's first kernel)")
    idle_total = 0.0
    for j in sorted(by_order):
        e = by_order[j]
        name = e["names"].most_common(1)[0][0]
        stream = streams.index(e["streams"].most_common(1)[0][0])
        start, end = statistics.median(e["start"]), statistics.median(e["end"])
        ran = statistics.median([b - a for a, b in zip(e["start"], e["end"])])
        idle = statistics.median(e["idle"])
        idle_total += idle
        print(f"{start:7.1f} {end:7.1f} {ran:6.1f} {idle:5.1f}  {stream:>6}  {e['grid']:<10}  {short(name)}")
    span, period = statistics.median(spans), statistics.median(periods) if periods else float("nan")
    print(f"step: {period:.1f} µs from launch to launch; its kernels span {span:.1f} µs; {period - span:.1f} µs between "
          f"launches; {idle_total:.1f} µs of the span with no kernel of the step running (sum of medians)")


if __name__ == "__main__":
    main()
