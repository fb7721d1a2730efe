#!/usr/bin/env python3
"""The host-to-device link's peak from pinned memory, through PyTorch: 256 MiB copies, best of five runs of ten."""
import time

import torch

n = 256 << 20
source = torch.empty(n, dtype=torch.uint8, pin_memory=True)
target = torch.empty(n, dtype=torch.uint8, device="cuda")
best = 0.0
for _ in range(6):
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        target.copy_(source, non_blocking=True)
    torch.cuda.synchronize()
    best = max(best, 10 * n / (time.perf_counter() - start))
print(f"host to device from pinned memory, 256 MiB copies: {best / 1e9:.1f} GB/s (best of 5 after one warm-up)")
