#!/bin/bash
# The cpu backend before (92331db) and after (ef6c7a9) issue 22's change, alternating, 4 rounds each.
cd /work/main
for round in 1 2 3 4 5 6 7 8; do
  for which in before after; do
    bin=/tmp/mlp-baseline; [ $which = after ] && bin=/tmp/mlp-after
    c=92331db; [ $which = after ] && c=ef6c7a9
    if [ $which = after ]; then extra="--commit $c"; else extra=""; fi
    MLP_COMMIT=$c $bin bench --backends cpu --workloads small-128,small-1024 --repeats 5 $extra --output Benchmarks/results/2026-12-07-issue22-cpu/$which-$round > /tmp/cpureg/$which-$round.txt 2>&1
    echo "$which $round done $(date +%T)"
  done
done
