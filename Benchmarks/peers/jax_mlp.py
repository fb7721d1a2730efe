#!/usr/bin/env python3
"""JAX as an expert writes it: data on the device, a whole epoch as one jitted `lax.scan` over batches, optax Adam,
the parameters and optimizer state donated to the epoch (updated in place).

    python3 Benchmarks/peers/jax_mlp.py --workloads small-128,small-1024 --epochs 1 --repeats 3 [--device cuda]

Two layouts of the weights, each reported as its own implementation: `[in, out]` applied as `x @ W` ("jax (scan,
x@W)"), and `[out, in]` applied as `x @ w.T` ("jax (scan, x@w.T)", PyTorch's `Linear` layout). XLA lays out the
products differently for the two, and on a GPU the first ran faster (issue 28); `mlp bench` reports the faster.
Precision: "highest" matmul precision for fp32, "tensorfloat32" for tf32 (GPU). bf16 is mixed precision, the
parameters and Adam's state fp32 and every product's operands bf16, in two formulations, each reported for each layout:
"bf16 activations" (as Flax's `Dense(dtype=bfloat16)` computes: the inputs and the weights cast to bf16, each layer's
outputs bf16, so that the backward's products take bf16 gradients too; the logits cast to fp32 for the loss) and
"fp32 activations" (each product's operands cast to bf16 with `preferred_element_type=float32`, its outputs fp32: the
backward then multiplies fp32 gradients by bf16 operands, which XLA runs as fp32 products).
"""
import os
from functools import partial

import common

args = common.parse_args(__doc__)
if args.device == "cpu":
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "tensorfloat32" if args.precision == "tf32" else "highest")


# The layouts, by the label each is reported under: whether the weights are stored [in, out] (applied as x @ W).
LAYOUTS = {"x@W": True, "x@w.T": False}
# The formulations of each precision, by the label each adds: whether the layers' outputs are bf16 (None: no bf16).
FORMULATIONS = {"bf16 activations": True, "fp32 activations": False} if args.precision == "bf16" else {"": None}
# JAX_MLP_LAYOUTS and JAX_MLP_FORMULATIONS (comma-separated labels) keep only those named: a short GPU lease runs the
# variants an earlier full run found fastest.
for variable, table in (("JAX_MLP_LAYOUTS", LAYOUTS), ("JAX_MLP_FORMULATIONS", FORMULATIONS)):
    chosen = [name.strip() for name in os.environ.get(variable, "").split(",") if name.strip()]
    for name in chosen:
        if name not in table and "" not in table:
            raise SystemExit(f"{variable}: {name!r} is not one of {', '.join(table)}")
    for name in [name for name in table if chosen and name and name not in chosen]:
        del table[name]


def main():
    train_x, train_y, test_x, test_y = common.load_mnist(args.data)
    device = jax.devices()[0]
    X, Y = jax.device_put(train_x, device), jax.device_put(train_y, device)
    for name in args.workloads.split(","):
        for layout, in_out in LAYOUTS.items():
            for formulation, bf16_outputs in FORMULATIONS.items():
                label = layout + (f", {formulation}" if formulation else "")
                train(name, label, in_out, bf16_outputs, X, Y, test_x, test_y, device, len(train_x))


def train(name, label, in_out, bf16_outputs, X, Y, test_x, test_y, device, samples):
    """Trains workload `name` with the weights in one layout (and, in bf16, one formulation), times it and prints its
    result line."""
    layers, batch = common.WORKLOADS[name]
    # The same initial values in either layout (He-normal, drawn as [out, in]).
    params = [(jnp.asarray(w.T.copy() if in_out else w), jnp.asarray(b)) for w, b in common.he_init(layers, args.seed)]
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(params)
    steps = samples // batch

    def dense(x, w, b):
        if bf16_outputs is None:
            return (x @ w if in_out else x @ w.T) + b
        x, w = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
        out_type = jnp.bfloat16 if bf16_outputs else jnp.float32
        product = jnp.matmul(x, w if in_out else w.T, preferred_element_type=out_type)
        return product + b.astype(out_type)

    def forward(params, x):
        for w, b in params[:-1]:
            x = jax.nn.relu(dense(x, w, b))
        w, b = params[-1]
        return dense(x, w, b).astype(jnp.float32)

    def loss_fn(params, x, y):
        logits = forward(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    # The parameters and the optimizer state are donated: XLA updates them in place instead of allocating new ones.
    @partial(jax.jit, donate_argnums=(0, 1))
    def epoch(params, opt_state, key):
        order = jax.random.permutation(key, X.shape[0])[:steps * batch].reshape(steps, batch)

        def step(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, X[idx], Y[idx])
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state, losses.mean()

    key = jax.random.PRNGKey(args.seed)
    state = {"params": params, "opt": opt_state, "key": key}

    def run_epoch():
        state["key"], sub = jax.random.split(state["key"])
        state["params"], state["opt"], _ = epoch(state["params"], state["opt"], sub)

    run_epoch()  # compile and warm up (one epoch, not timed)
    jax.block_until_ready(state["params"])
    rates, step_us = common.timed_runs(run_epoch, args.epochs, args.repeats, steps * batch, steps,
                                       sync=lambda: jax.block_until_ready(state["params"]))
    logits = jax.jit(forward)(state["params"], jax.device_put(test_x, device))
    accuracy = float((jnp.argmax(logits, axis=1) == jnp.asarray(test_y)).mean())
    common.report(f"jax (scan, {label})", name, args.precision, rates, step_us, accuracy,
                  f"JAX {jax.__version__} on {device.platform}; weights {'[in, out]' if in_out else '[out, in]'}; warm-up epoch not counted")


if __name__ == "__main__":
    main()
