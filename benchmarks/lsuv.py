"""LSUV: kinit.lsuv against the straightforward implementation, side by side.

The straightforward LSUV builds, for every layer and every iteration, a new
sub-model from the inputs to that layer and predicts the batch with it (the
layer's fused activation switched off, so both measure the same
pre-activation). `kinit.lsuv` builds one probe for all layers and measures
every layer in each pass. Both start from the same weights (normal, σ =
0.01), fill the kernels orthonormally, use the same batch, target (std 1) and
tolerance (0.1), and must converge on every layer.

For a 20-layer ReLU MLP and a small CNN it prints a Markdown table with
medians over `--repeats` (min–max), measured in the same run and
interleaved: seconds, forward passes (calls of a probe or sub-model) and
layer evaluations (layers those calls ran through), and the time ratio
baseline / kinit.

Usage:
    python benchmarks/lsuv.py                  # 3 repetitions
    python benchmarks/lsuv.py --repeats 5
    python benchmarks/lsuv.py --smoke          # tiny models, one repetition
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kinit  # noqa: E402
from kinit.lsuv import SUPPORTED  # noqa: E402

TARGET, TOL, MAX_ITER = 1.0, 0.1, 10


def mlp(depth: int, width: int, features: int) -> keras.Model:
    small = keras.initializers.RandomNormal(stddev=0.01, seed=0)
    dense = [keras.layers.Dense(width, activation="relu", kernel_initializer=small) for _ in range(depth)]
    return keras.Sequential([keras.Input((features,)), *dense])


def cnn(filters: int, size: int, depth: int = 5) -> keras.Model:
    """`depth` 3×3 ReLU convolutions (every other one strided, widths doubling), pooling, softmax."""
    small = keras.initializers.RandomNormal(stddev=0.01, seed=0)
    layers = [keras.Input((size, size, 1))]
    for index in range(depth):
        strides = 2 if index % 2 == 0 and index > 0 else 1
        layers.append(keras.layers.Conv2D(filters * 2 ** (index // 2), 3, strides=strides, padding="same",
                                          activation="relu", kernel_initializer=small))
    layers += [keras.layers.GlobalAveragePooling2D(),
               keras.layers.Dense(10, activation="softmax", kernel_initializer=small)]
    return keras.Sequential(layers)


def baseline_lsuv(model: keras.Model, x: np.ndarray, seed: int = 0) -> dict:
    """LSUV with a new sub-model per layer per iteration (the obvious way)."""
    started = time.perf_counter()
    targets = [layer for layer in model.layers if isinstance(layer, SUPPORTED)]
    passes = evaluations = 0
    for index, layer in enumerate(targets):
        layer.kernel.assign(kinit.Orthogonal(seed=seed + index)(tuple(layer.kernel.shape)))
        layer.bias.assign(np.zeros(layer.bias.shape, "float32"))
    converged = True
    for layer in targets:
        depth = model.layers.index(layer) + 1
        for iteration in range(MAX_ITER + 1):
            activation, layer.activation = layer.activation, keras.activations.linear
            try:
                output = keras.Model(model.inputs, layer.output).predict(x, batch_size=len(x), verbose=0)
            finally:
                layer.activation = activation
            passes, evaluations = passes + 1, evaluations + depth
            std = float(np.std(output))
            if abs(std / TARGET - 1.0) <= TOL:
                break
            if iteration == MAX_ITER:
                converged = False
                break
            layer.kernel.assign(layer.kernel.value * (TARGET / std))
    return {"seconds": time.perf_counter() - started, "passes": passes, "evaluations": evaluations,
            "converged": converged}


def kinit_lsuv(model: keras.Model, x: np.ndarray, seed: int = 0) -> dict:
    report = kinit.lsuv(model, x, TARGET, TOL, MAX_ITER, seed=seed, batch_size=len(x))
    depth = sum(1 for layer in model.layers if not isinstance(layer, keras.layers.InputLayer))
    return {"seconds": report.seconds, "passes": report.forward_passes,
            "evaluations": report.forward_passes * depth, "converged": report.converged}


def summary(values, digits: int = 2) -> str:
    if min(values) == max(values):
        return f"{statistics.median(values):.{digits}f}"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny models, one repetition")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    if args.smoke:
        repeats = 1
        cases = {
            "MLP 3 × 16": (lambda: mlp(3, 16, 8), rng.normal(size=(64, 8))),
            "CNN 2 conv + dense, 8×8": (lambda: cnn(4, 8, depth=2), rng.normal(size=(32, 8, 8, 1))),
        }
    else:
        repeats = args.repeats
        cases = {
            "MLP 20 × 256 (784 inputs)": (lambda: mlp(20, 256, 784), rng.normal(size=(512, 784))),
            "CNN 5 conv + dense, 28×28": (lambda: cnn(16, 28), rng.normal(size=(256, 28, 28, 1))),
        }
    methods = {"kinit.lsuv (one probe)": kinit_lsuv, "sub-model per layer per iteration": baseline_lsuv}

    lines = [
        "| model | method | seconds | forward passes | layer evaluations | time / kinit |",
        "|---|---|---|---|---|---|",
    ]
    for name, (build, x) in cases.items():
        x = x.astype("float32")
        results = {method: [] for method in methods}
        for _ in range(repeats):
            for method, run in methods.items():  # interleaved, so drift hits both
                result = run(build(), x)
                if not result["converged"]:
                    raise RuntimeError(f"{method} did not converge on {name}")
                results[method].append(result)
        reference = [r["seconds"] for r in results["kinit.lsuv (one probe)"]]
        for method, runs in results.items():
            seconds = [r["seconds"] for r in runs]
            ratios = [s / k for s, k in zip(seconds, reference)]
            lines.append(
                f"| {name} | {method} | {summary(seconds)} | {summary([r['passes'] for r in runs], 0)} "
                f"| {summary([r['evaluations'] for r in runs], 0)} | {summary(ratios)}× |"
            )
    table = "\n".join(lines)
    print(f"\nLSUV, medians over {repeats} repetition(s) (min–max), backend {keras.backend.backend()}:\n")
    print(table)
    return table


if __name__ == "__main__":
    main()
