#!/usr/bin/env python3
"""PyTorch: nn.Linear + ReLU, torch.optim.Adam, data as tensors in memory (on the GPU for --device cuda).

    python3 Benchmarks/peers/torch_mlp.py --workloads small-128,small-1024 --epochs 1 --repeats 3 [--device cuda]

On the CPU: eager mode with one thread per core. On the GPU: eager, and the whole training step (gather,
forward, loss, backward, Adam with capturable=True) captured once in a CUDA graph and replayed. --precision tf32
turns on TF32 matrix units (torch.backends.cuda.matmul.allow_tf32); fp32 keeps them off.
"""
import os

import common
import numpy as np
import torch


def build(layers, seed, device):
    mods = []
    for i, (w, b) in enumerate(common.he_init(layers, seed)):
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        mods.append(lin)
        if i < len(layers) - 2:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods).to(device)


def accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def main():
    args = common.parse_args(__doc__)
    device = torch.device(args.device)
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count())
    else:
        torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    train_x, train_y, test_x, test_y = common.load_mnist(args.data)
    X, Y = torch.from_numpy(train_x).to(device), torch.from_numpy(train_y).long().to(device)
    TX, TY = torch.from_numpy(test_x).to(device), torch.from_numpy(test_y).long().to(device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    modes = ["eager"] + (["cuda graph"] if args.device == "cuda" else [])
    for name in args.workloads.split(","):
        layers, batch = common.WORKLOADS[name]
        steps = len(train_x) // batch
        for mode in modes:
            torch.manual_seed(args.seed)
            model = build(layers, args.seed, device)
            graph = mode == "cuda graph"
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graph)
            loss_fn = torch.nn.CrossEntropyLoss()
            generator = torch.Generator(device=device).manual_seed(args.seed + 1)
            if not graph:
                def step(idx):
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(model(X[idx]), Y[idx])
                    loss.backward()
                    opt.step()

                def run_epoch():
                    order = torch.randperm(len(X), device=device, generator=generator)
                    for s in range(steps):
                        step(order[s * batch:(s + 1) * batch])

                for s in range(3):
                    step(torch.randperm(len(X), device=device, generator=generator)[:batch])
            else:
                static_idx = torch.zeros(batch, dtype=torch.long, device=device)

                def body():
                    opt.zero_grad(set_to_none=False)
                    loss = loss_fn(model(X[static_idx]), Y[static_idx])
                    loss.backward()
                    opt.step()

                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(3):  # warm-up on a side stream, as the CUDA graph documentation asks
                        static_idx.copy_(torch.randperm(len(X), device=device, generator=generator)[:batch])
                        body()
                torch.cuda.current_stream().wait_stream(side)
                cuda_graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(cuda_graph):
                    body()

                def run_epoch():
                    order = torch.randperm(len(X), device=device, generator=generator)
                    for s in range(steps):
                        static_idx.copy_(order[s * batch:(s + 1) * batch])
                        cuda_graph.replay()

            run_epoch()  # warm-up epoch, not timed
            rates, step_us = common.timed_runs(run_epoch, args.epochs, args.repeats, steps * batch, steps, sync=sync)
            precision = args.precision if args.device == "cuda" else "fp32"
            label = "torch" + ("" if args.device == "cpu" else f" {mode}")
            common.report(label, name, precision, rates, step_us, accuracy(model, TX, TY),
                          f"PyTorch {torch.__version__} on {args.device}, {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
