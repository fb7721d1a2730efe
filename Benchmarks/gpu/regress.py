"""Summarises `run.sh regress`: for each precision and workload, the cuda backend's µs a step before and after a
change (the median of each binary's rounds, each round's own median of its timed runs), their ratio, and JAX's µs a
step, at its fastest formulation, from the round that ran it. A change of more than 3% either way is marked.

usage: python3 regress.py RESULTS_DIR PRECISION...
"""
import json
import os
import statistics
import sys


def runs(directory, precision, which):
    """The bench.json of each round of one binary, in round order."""
    found = []
    for round_number in range(1, 10):
        path = os.path.join(directory, f"regress-{precision}-{which}-{round_number}", "bench.json")
        if os.path.exists(path):
            with open(path) as f:
                found.append(json.load(f))
    return found


def step_microseconds(report, implementation):
    """µs a step of each workload of one implementation in one report."""
    return {row["workload"]: row["stepMicroseconds"] for row in report["training"] if row["implementation"] == implementation}


def main():
    directory, precisions = sys.argv[1], sys.argv[2:]
    worst = 0.0
    for precision in precisions:
        before, after = runs(directory, precision, "before"), runs(directory, precision, "after")
        if not before or not after:
            print(f"{precision}: no results")
            continue
        print(f"{precision}: before {before[0]['machine']['commit']}, after {after[0]['machine']['commit']}, "
              f"{len(before)} and {len(after)} rounds; {after[0].get('gpu', '')}")
        # JAX at its fastest formulation for each workload (it runs in both weight layouts).
        jax = {}
        for report in after:
            for row in report["training"]:
                if row["implementation"].startswith("jax"):
                    best = jax.get(row["workload"])
                    if best is None or row["stepMicroseconds"] < best[1]:
                        jax[row["workload"]] = (row["implementation"], row["stepMicroseconds"])
        print(f"  {'workload':<12} {'before µs':>10} {'after µs':>10} {'after/before':>13}   rounds (before | after)   JAX")
        for workload in [row["workload"] for row in after[0]["training"] if row["implementation"] == "cuda"]:
            b = [step_microseconds(r, "cuda").get(workload) for r in before]
            a = [step_microseconds(r, "cuda").get(workload) for r in after]
            b, a = [x for x in b if x], [x for x in a if x]
            if not b or not a:
                continue
            mb, ma = statistics.median(b), statistics.median(a)
            ratio = ma / mb
            worst = max(worst, abs(ratio - 1))
            flag = "  <-- over 3%" if abs(ratio - 1) > 0.03 else ""
            rounds = " ".join(f"{x:.1f}" for x in b) + " | " + " ".join(f"{x:.1f}" for x in a)
            peer = jax.get(workload)
            peer_text = f"{peer[1]:.1f} ({peer[0]}; ours after {peer[1] / ma:.2f}x)" if peer else "-"
            print(f"  {workload:<12} {mb:>10.1f} {ma:>10.1f} {ratio:>13.3f}   {rounds:<24}   {peer_text}{flag}")
    print(f"largest change either way: {worst * 100:.1f}%")


if __name__ == "__main__":
    main()
