#!/usr/bin/env python3
"""Runs a command and prints its peak resident memory (the host's side of a streamed run: it should hold the data
once, not twice).

    python3 Benchmarks/gpu/max_rss.py COMMAND [ARGS...]
"""
import resource
import subprocess
import sys

status = subprocess.run(sys.argv[1:]).returncode
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"max RSS {peak_kib / 2**20:.2f} GiB (exit status {status})", flush=True)
sys.exit(status)
