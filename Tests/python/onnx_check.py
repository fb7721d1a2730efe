#!/usr/bin/env python3
"""Checks an `mlp export --format onnx` model with ONNX's checker, runs it in ONNX Runtime, and compares its outputs
with `mlp predict`'s CSV for the same samples.

Usage: onnx_check.py MODEL.onnx PREDICTIONS.csv --mnist DIR     (the IDX folder's test images, as `mlp predict --data DIR`)
       onnx_check.py MODEL.onnx PREDICTIONS.csv --csv TABLE.csv  (a table's rows, its feature columns by the model's metadata)
Prints `onnx ok: N rows, ...` and exits 0 when every predicted class is the same and every probability (or
regression value, relatively) is within 1e-5; else prints what differs and exits 1. Used by the Swift test suite.
"""
import csv
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Benchmarks", "peers"))
from common import read_idx  # noqa: E402


def main():
    model_path, predictions_path, kind, source = sys.argv[1:5]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    metadata = {p.key: p.value for p in model.metadata_props}
    if kind == "--mnist":
        images = read_idx(os.path.join(source, "t10k-images-idx3-ubyte.gz"))
        x = images.reshape(len(images), -1).astype(np.float32)  # raw pixel values, 0-255
    else:
        features = json.loads(metadata["features"])
        with open(source, newline="") as f:
            rows = list(csv.DictReader(f))
        x = np.array([[float(r[name]) for name in features] for r in rows], dtype=np.float32)
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {"input": x})))
    with open(predictions_path, newline="") as f:
        predicted = list(csv.DictReader(f))
    if len(predicted) != len(x):
        print(f"{len(predicted)} predictions from mlp, {len(x)} samples")
        return 1
    if metadata["task"] == "regression":
        targets = json.loads(metadata["targets"])
        ours = np.array([[float(r["pred_" + t]) for t in targets] for r in predicted])
        theirs = outputs["values"].astype(np.float64)
        worst = float(np.max(np.abs(ours - theirs) / np.maximum(np.abs(ours), 1)))
        if worst > 1e-5:
            print(f"values differ: largest relative difference {worst:.3g}")
            return 1
        print(f"onnx ok: {len(x)} rows, regression values within {worst:.2g} (relative)")
        return 0
    classes = json.loads(metadata["classes"])
    probabilities = outputs["probabilities"].astype(np.float64)
    ours = np.array([[float(r["p_" + c]) for c in classes] for r in predicted])
    worst = float(np.max(np.abs(ours - probabilities)))
    same = sum(classes[int(np.argmax(p))] == r["prediction"] for p, r in zip(probabilities, predicted))
    if same != len(x) or worst > 1e-5:
        print(f"{len(x) - same} predicted classes differ; largest probability difference {worst:.3g}")
        return 1
    print(f"onnx ok: {len(x)} rows, every class the same, probabilities within {worst:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
