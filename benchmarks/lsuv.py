"""LSUV: kinit.lsuv against the straightforward implementation, side by side.

The straightforward LSUV (the baseline, written here) builds, for every
layer and every iteration, a new sub-model from the inputs to that layer and
predicts the batch with it (the layer's fused activation switched off, so
both measure the same pre-activation). `kinit.lsuv` builds one probe for all
layers and measures every layer in each pass. Both start from the same
weights (normal, σ = 0.01), fill the kernels orthonormally, use the same
batch, target (std 1) and tolerance (0.1), and must converge on every layer.

For a 20-layer ReLU MLP and a small CNN the table shows, per method:
seconds, forward passes (calls of a probe or sub-model), layer evaluations
(layers those calls ran through) and the ratios kinit / baseline of
seconds and of passes.

Usage:
    python benchmarks/lsuv.py                  # 3 repetitions, ~30 s
    python benchmarks/lsuv.py --repeats 5
    python benchmarks/lsuv.py --smoke          # tiny models, 1 repetition
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "shared"))
import bench  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kinit  # noqa: E402
from kinit.lsuv import SUPPORTED  # noqa: E402

TARGET, TOL, MAX_ITER = 1.0, 0.1, 10
OURS, BASELINE = "kinit.lsuv (one probe)", "sub-model per layer per iteration"


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
    return {"passes": passes, "evaluations": evaluations, "converged": converged}


def kinit_lsuv(model: keras.Model, x: np.ndarray, seed: int = 0) -> dict:
    report = kinit.lsuv(model, x, TARGET, TOL, MAX_ITER, seed=seed, batch_size=len(x))
    depth = sum(1 for layer in model.layers if not isinstance(layer, keras.layers.InputLayer))
    return {"passes": report.forward_passes, "evaluations": report.forward_passes * depth,
            "converged": report.converged}


METHODS = {OURS: kinit_lsuv, BASELINE: baseline_lsuv}


def cases(smoke: bool) -> dict:
    """{name: (model builder, batch)}."""
    rng = np.random.default_rng(0)
    if smoke:
        return {
            "MLP 3 × 16": (lambda: mlp(3, 16, 8), rng.normal(size=(64, 8))),
            "CNN 2 conv + dense, 8×8": (lambda: cnn(4, 8, depth=2), rng.normal(size=(32, 8, 8, 1))),
        }
    return {
        "MLP 20 × 256 (784 inputs)": (lambda: mlp(20, 256, 784), rng.normal(size=(512, 784))),
        "CNN 5 conv + dense, 28×28": (lambda: cnn(16, 28), rng.normal(size=(256, 28, 28, 1))),
    }


def main(argv=None) -> list[str]:
    args = bench.parse(bench.parser(__doc__, repeats=3), argv)
    bench.header("LSUV", args.repeats, f"Target std {TARGET}, tolerance {TOL}, at most {MAX_ITER} rescalings.")
    rows = []
    for name, (build, x) in cases(args.smoke).items():
        x = x.astype("float32")

        def run(method: str, _) -> dict:
            result, seconds = bench.timed(METHODS[method], build(), x)
            if not result["converged"]:
                raise RuntimeError(f"{method} did not converge on {name}")
            return {**result, "seconds": seconds}

        results = bench.interleave(list(METHODS), args.repeats, run)
        column = {key: {method: [run[key] for run in runs] for method, runs in results.items()}
                  for key in ("seconds", "passes", "evaluations")}
        for method in METHODS:
            rows.append([name, method, bench.spread(column["seconds"][method]),
                         bench.spread(column["passes"][method], 0), bench.spread(column["evaluations"][method], 0),
                         bench.spread(bench.ratios(column["seconds"][method], column["seconds"][BASELINE])),
                         bench.spread(bench.ratios(column["passes"][method], column["passes"][BASELINE]))])
    headers = ["model", "method", "seconds", "forward passes", "layer evaluations", "seconds / baseline",
               "passes / baseline"]
    return [bench.print_table(f"kinit.lsuv against the baseline ({BASELINE})",
                              headers, rows)]


if __name__ == "__main__":
    main()
