#!/usr/bin/env python3
"""PyTorch: nn.Linear + ReLU, torch.optim.Adam, data as tensors in memory (on the GPU for --device cuda).

    python3 Benchmarks/peers/torch_mlp.py --workloads small-128,small-1024 --epochs 1 --repeats 3 [--device cuda]

On the CPU: eager and compile, with one thread per core. On the GPU, three ways an expert would write the step (each
workload reports those that run; `mlp bench` compares ours with the fastest):
  eager       the step as written, launched op by op (Adam's fused kernel, one launch for every parameter);
  cuda graph  the whole step (gather, forward, loss, backward, fused Adam with capturable=True) captured once in a
              CUDA graph and replayed;
  compile     the whole step under torch.compile: forward and backward traced as one graph (compiled autograd on
              releases before trace_autograd_ops), the optimizer's update in the same compiled function, mode
              reduce-overhead (Inductor's fused kernels, replayed as CUDA graphs on the GPU). --compile-mode
              max-autotune adds Triton's tuned matrix products, at a compile of minutes. On the GPU the first step runs
              eager, so that the gradients and Adam's state are not outputs of a CUDA graph: made by the first
              compiled call, they were, and PyTorch 2.11's CUDA-graph trees refused the next replay's reads of them
              (H100, 2026-12-07). The same compiled step captured whole in one CUDA graph by hand ran but trained
              wrongly (56% test accuracy after four epochs of small-128, against 98%), so it is not offered
              (Benchmarks/RESULTS.md).
--variants picks among them (TORCH_MLP_VARIANTS sets the default, for runs through `mlp bench --peers`). --precision tf32 turns on TF32 matrix units (torch.backends.cuda.matmul.allow_tf32);
fp32 keeps them off; bf16 runs the forward and the loss under torch.autocast(dtype=torch.bfloat16), PyTorch's mixed
precision (products on bf16 operands, parameters and Adam's state fp32; the weight-cast cache off, as CUDA graphs
require). A variant that fails (a missing compiler, say) is reported on standard error and skipped.
"""
import os
import sys

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


def mixed_precision(args):
    """The context the forward and the loss run in: autocast to bf16 for --precision bf16, else nothing."""
    return torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.precision == "bf16", cache_enabled=False)


def extra_arguments(p):
    p.add_argument("--variants", help="comma-separated; default eager,compile on the CPU, all four on the GPU")
    p.add_argument("--compile-mode", default="reduce-overhead",
                   choices=["reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "default"])


def main():
    args = common.parse_args(__doc__, extra_arguments)
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
    # TORCH_MLP_VARIANTS narrows the default where `mlp bench --peers` runs this script (it passes no --variants).
    default = os.environ.get("TORCH_MLP_VARIANTS") or ("eager,compile" if args.device == "cpu" else "eager,cuda graph,compile")
    modes = [m.strip() for m in (args.variants or default).split(",") if m.strip()]
    for name in args.workloads.split(","):
        layers, batch = common.WORKLOADS[name]
        steps = len(train_x) // batch
        for mode in modes:
            torch.manual_seed(args.seed)
            model = build(layers, args.seed, device)
            generator = torch.Generator(device=device).manual_seed(args.seed + 1)
            try:
                run_epoch = EPOCHS[mode](model, X, Y, batch, steps, generator, device, args)
                run_epoch()  # warm-up epoch, not timed (for compile: the compilation and the graphs' recording)
                rates, step_us = common.timed_runs(run_epoch, args.epochs, args.repeats, steps * batch, steps,
                                                   sync=sync)
            except Exception as error:  # one variant's failure must not lose the others' rows
                print(f"torch {mode} on {name} failed: {type(error).__name__}: {error}", file=sys.stderr)
                continue
            precision = "fp32" if args.device == "cpu" and args.precision == "tf32" else args.precision
            label = "torch" + ("" if args.device == "cpu" and mode == "eager" else f" {mode}")
            if mode.startswith("compile") and args.compile_mode != "reduce-overhead":
                label += f" ({args.compile_mode})"
            common.report(label, name, precision, rates, step_us, accuracy(model, TX, TY),
                          f"PyTorch {torch.__version__} on {args.device}, {torch.get_num_threads()} threads")


def eager_epoch(model, X, Y, batch, steps, generator, device, args):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(idx):
        opt.zero_grad(set_to_none=True)
        with mixed_precision(args):
            loss = loss_fn(model(X[idx]), Y[idx])
        loss.backward()
        opt.step()

    return shuffled_epochs(step, len(X), batch, steps, generator, device)


def shuffled_epochs(step, count, batch, steps, generator, device):
    """Three warm-up steps, then a function that runs `step` on each batch of a fresh shuffle: one epoch."""
    for _ in range(3):
        step(torch.randperm(count, device=device, generator=generator)[:batch])

    def run_epoch():
        order = torch.randperm(count, device=device, generator=generator)
        for s in range(steps):
            step(order[s * batch:(s + 1) * batch])
    return run_epoch


def graph_epoch(model, X, Y, batch, steps, generator, device, args):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=True, fused=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    static_idx = torch.zeros(batch, dtype=torch.long, device=device)

    def body():
        opt.zero_grad(set_to_none=False)
        with mixed_precision(args):
            loss = loss_fn(model(X[static_idx]), Y[static_idx])
        loss.backward()
        opt.step()

    return captured_epochs(body, static_idx, len(X), batch, steps, generator, device)


def captured_epochs(body, static_idx, count, batch, steps, generator, device):
    """`body` (a whole step reading its batch's indices from `static_idx`) run three times on a side stream, as the
    CUDA graph documentation asks, captured in one CUDA graph, and a function that replays it on each batch of a fresh
    shuffle: one epoch."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            static_idx.copy_(torch.randperm(count, device=device, generator=generator)[:batch])
            body()
    torch.cuda.current_stream().wait_stream(side)
    cuda_graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(cuda_graph):
        body()

    def run_epoch():
        order = torch.randperm(count, device=device, generator=generator)
        for s in range(steps):
            static_idx.copy_(order[s * batch:(s + 1) * batch])
            cuda_graph.replay()
    return run_epoch


def trace_backward_into_graph():
    """The backward traced into the forward's graph, so that Inductor sees (and fuses) the whole step: newer releases
    do it with trace_autograd_ops, older ones with compiled autograd (the backward as a graph of its own)."""
    if hasattr(torch._dynamo.config, "trace_autograd_ops"):
        torch._dynamo.config.trace_autograd_ops = True
    else:
        torch._dynamo.config.compiled_autograd = True


def compile_epoch(model, X, Y, batch, steps, generator, device, args):
    # The whole step in one compiled function: the backward traced in, and the optimizer's update (PyTorch's "compiling
    # the optimizer" recipe) between the two graph breaks torch.optim itself asks for. The learning rate is a tensor so
    # that no value change recompiles.
    trace_backward_into_graph()
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=torch.tensor(1e-3, device=device), capturable=True)
    loss_fn = torch.nn.CrossEntropyLoss()

    def whole_step(idx):
        with mixed_precision(args):
            loss = loss_fn(model(X[idx]), Y[idx])
        loss.backward()
        opt.step()
        # The gradients zeroed in place for the next step's backward to add into (`opt.zero_grad` breaks the graph).
        torch._foreach_zero_([p.grad for p in params])

    if device.type == "cuda":
        # The first step eager: the gradients and Adam's state are then tensors made outside the compiled code, which
        # keep their addresses (marked static, as the data are), so that the CUDA graphs replay the step in place. Made
        # by the first compiled call, they were outputs of its CUDA graph, which the next replay overwrote while the step
        # read them ("accessing tensor output of CUDAGraphs that has been overwritten by a subsequent run", PyTorch
        # 2.11 on an H100). The CPU has no CUDA graphs (and capturable Adam runs eager only on a GPU).
        whole_step(torch.randperm(len(X), device=device, generator=generator)[:batch])
        for tensor in [X, Y] + [p.grad for p in params]:
            torch._dynamo.mark_static_address(tensor)
    compiled_step = torch.compile(whole_step, mode=args.compile_mode)

    def step(idx):
        # Each call is a new training step: the CUDA graphs that reduce-overhead replays may then reuse the buffers of
        # the step before (without the mark, PyTorch refuses the second call's reads of the first's outputs).
        torch.compiler.cudagraph_mark_step_begin()
        compiled_step(idx)

    return shuffled_epochs(step, len(X), batch, steps, generator, device)


EPOCHS = {"eager": eager_epoch, "cuda graph": graph_epoch, "compile": compile_epoch}


if __name__ == "__main__":
    main()
