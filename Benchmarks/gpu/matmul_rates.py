#!/usr/bin/env python3
"""The GPU's product rates in bf16 (operands stored in bf16) and in fp32 with TF32 tensor cores, through PyTorch's
cuBLAS, at 4096³ and at wide-1024's and small-1024's forward shapes: what a bf16 path could buy over TF32.

    python3 Benchmarks/gpu/matmul_rates.py

Each product runs 20 times back to back between two CUDA events after three untimed; the small shapes' times include
the launches between them (no graph), so only the large ones stand for the products' own rates.
"""
import torch

torch.backends.cuda.matmul.allow_tf32 = True


def rate(m, n, k, dtype):
    """TFLOP/s and µs of one m×k by k×n product of random values in `dtype`."""
    a = torch.randn(m, k, device="cuda", dtype=dtype)
    b = torch.randn(k, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    repeats = 20
    start.record()
    for _ in range(repeats):
        a @ b
    stop.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(stop) / repeats * 1e-3
    return 2 * m * n * k / seconds / 1e12, seconds * 1e6


for m, n, k in [(4096, 4096, 4096), (1024, 4096, 4096), (1024, 4096, 784), (1024, 512, 784), (1024, 256, 512)]:
    for dtype, name in [(torch.bfloat16, "bf16"), (torch.float32, "tf32")]:
        tflops, us = rate(m, n, k, dtype)
        print(f"{m}x{n}x{k} {name}: {tflops:.0f} TFLOP/s, {us:.1f} us")
