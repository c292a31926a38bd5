"""Train one small network on Fashion-MNIST from each initialization, side by side.

Reproduces "Effects of Weight Initialization on Neural Networks" (the
FashionMNIST comparison): Flatten(28×28) → Dense(256, relu) → Dropout(0.2) →
Dense(128, relu) → Dropout(0.2) → Dense(10, softmax), Adam 1e-3, sparse
categorical cross-entropy, batch 128, 10 epochs, the test split as
validation, trained once per kernel initialization (biases zero):

    all zeros, all ones, uniform [0, 1], uniform ±1/√fan_in,
    normal σ = 1/√fan_in, the Keras default (glorot_uniform),
    and kinit's He normal, orthogonal, auto policy and LSUV.

Every run logs to its own TensorBoard directory under one parent (metrics,
and kinit's diagnostics: weight, activation and gradient histograms from the
initialization on). The results table (CSV and Markdown) and two plots
(validation curves; activation std per layer at initialization) are saved
beside the logs.

Usage:
    python examples/fashion_mnist_comparison.py            # everything, 10 epochs
    python examples/fashion_mnist_comparison.py --quick    # 3000 examples, 2 epochs
    python examples/fashion_mnist_comparison.py --schemes zeros keras_default --epochs 3
    tensorboard --logdir <output dir>/logs                 # printed at the end
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

EXAMPLES = Path(__file__).resolve().parent
# Runnable from a checkout without installing the package.
for _path in (EXAMPLES.parent, EXAMPLES):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kinit.callbacks as diagnostics  # noqa: E402
import schemes as scheme_registry  # noqa: E402
from fashion_mnist_data import (  # noqa: E402
    IMAGE_SHAPE,
    NUM_CLASSES,
    DataNotFoundError,
    IdxFormatError,
    load_fashion_mnist,
)

QUICK = {"epochs": 2, "train_size": 3000, "test_size": 1000}
FULL = {"epochs": 10, "train_size": None, "test_size": None}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    names = [scheme.name for scheme in scheme_registry.COMPARISON]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--schemes", nargs="+", default=names, choices=names, metavar="NAME",
                        help=f"schemes to train, from: {', '.join(names)}")
    parser.add_argument("--quick", action="store_true",
                        help="a few thousand examples and 2 epochs (explicit flags still win)")
    parser.add_argument("--epochs", type=int, help="epochs per scheme (default 10, quick 2)")
    parser.add_argument("--train-size", type=int,
                        help="random training subset (default all 60000, quick 3000)")
    parser.add_argument("--test-size", type=int,
                        help="random validation subset of the test split (default all, quick 1000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128], help="hidden layer widths")
    parser.add_argument("--dropout", type=float, default=0.2, help="dropout after each hidden layer")
    parser.add_argument("--probe-size", type=int, default=256,
                        help="training examples in the fixed diagnostics probe batch")
    parser.add_argument("--target-accuracy", type=float, default=0.85,
                        help="the table reports the first epoch reaching this validation accuracy")
    parser.add_argument("--seed", type=int, default=0,
                        help="fixes the subsets, the data order, dropout and the initial weights")
    parser.add_argument("--data-dir", type=Path,
                        help="a directory with the four Fashion-MNIST IDX .gz files")
    parser.add_argument("--no-download", action="store_true",
                        help="never fall back to Keras's download")
    parser.add_argument("--output-dir", type=Path,
                        help="where logs, table and plots go (default runs/fashion_mnist/<timestamp>)")
    parser.add_argument("--quiet", action="store_true",
                        help="no Keras progress bars; one line per scheme and the results")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.output_dir is None:
        args.output_dir = Path("runs", "fashion_mnist", time.strftime("%Y%m%d-%H%M%S"))
    return args


@dataclasses.dataclass
class Data:
    """Scaled training and validation arrays and the diagnostics probe batch."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    probe: tuple[np.ndarray, np.ndarray]
    source: str


def prepare_data(args: argparse.Namespace) -> Data:
    raw = load_fashion_mnist(args.data_dir, download=not args.no_download)
    rng = np.random.default_rng(args.seed)

    def subset(x: np.ndarray, y: np.ndarray, size: Optional[int]):
        if size is not None and size < len(x):
            keep = np.sort(rng.choice(len(x), size, replace=False))
            x, y = x[keep], y[keep]
        return (x.astype("float32") / 255.0), y.astype("int32")

    x_train, y_train = subset(raw.x_train, raw.y_train, args.train_size)
    x_val, y_val = subset(raw.x_test, raw.y_test, args.test_size)
    probe = (x_train[: args.probe_size], y_train[: args.probe_size])
    return Data(x_train, y_train, x_val, y_val, probe, raw.source)


def build_model(scheme: scheme_registry.Scheme, args: argparse.Namespace) -> keras.Model:
    """The article's network; fixed layer names so runs share TensorBoard tags."""

    def dense(units: int, activation: str, name: str) -> keras.layers.Dense:
        return keras.layers.Dense(
            units, activation=activation, name=name,
            kernel_initializer=scheme.kernel_initializer(activation), bias_initializer="zeros",
        )

    layers = [keras.Input(IMAGE_SHAPE), keras.layers.Flatten(name="flatten")]
    for index, units in enumerate(args.hidden, start=1):
        layers.append(dense(units, "relu", f"dense_{index}"))
        layers.append(keras.layers.Dropout(args.dropout, name=f"dropout_{index}"))
    layers.append(dense(NUM_CLASSES, "softmax", "output"))
    model = keras.Sequential(layers, name="mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def training_data(data: Data, args: argparse.Namespace) -> tf.data.Dataset:
    # An explicit shuffle seed makes the data order part of --seed.
    return (
        tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
        .shuffle(len(data.x_train), seed=args.seed, reshuffle_each_iteration=True)
        .batch(args.batch_size)
    )


def logging_callbacks(run_dir: Path, probe) -> list[keras.callbacks.Callback]:
    """Keras's metrics plus kinit's diagnostics."""
    return [
        keras.callbacks.TensorBoard(str(run_dir)),
        diagnostics.InitDiagnostics(str(run_dir / "diagnostics"), probe_data=probe, freq=1),
    ]


@dataclasses.dataclass
class InitState:
    """kinit's diagnosis of the initialized model on the probe batch."""

    activation_std: list[tuple[str, float]]
    findings: list[str]


def diagnose_init(model: keras.Model, probe) -> InitState:
    """Per-layer activation std and health findings."""
    diagnosis = diagnostics.diagnose(model, *probe)
    stds = [(row.path, float(row.std)) for row in diagnosis if row.kind == "activation"]
    return InitState(stds, list(diagnosis.findings))


@dataclasses.dataclass
class SchemeRun:
    scheme: scheme_registry.Scheme
    history: dict[str, list[float]]
    wall_time: float
    init: InitState

    def row(self, target: float) -> dict:
        h = self.history
        reached = [epoch for epoch, acc in enumerate(h["val_accuracy"], 1) if acc >= target]
        return {
            "scheme": self.scheme.name,
            "initialization": self.scheme.label,
            "train_loss": h["loss"][-1],
            "train_accuracy": h["accuracy"][-1],
            "val_loss": h["val_loss"][-1],
            "val_accuracy": h["val_accuracy"][-1],
            "best_val_accuracy": max(h["val_accuracy"]),
            "epoch_to_target": reached[0] if reached else "never",
            "wall_time_s": self.wall_time,
        }


def train_scheme(scheme, data: Data, args: argparse.Namespace, run_dir: Path) -> SchemeRun:
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    model = build_model(scheme, args)
    if scheme.reinitialize is not None:
        scheme.reinitialize(model, data.probe[0], args.seed)
    setup_time = time.perf_counter() - start
    # Measured outside the timed part: it is for the report, not the training.
    init = diagnose_init(model, data.probe)
    start = time.perf_counter()
    history = model.fit(
        training_data(data, args),
        epochs=args.epochs,
        validation_data=(data.x_val, data.y_val),
        shuffle=False,  # the dataset shuffles itself, with the seed
        callbacks=logging_callbacks(run_dir, data.probe),
        verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2),
    )
    wall_time = setup_time + time.perf_counter() - start
    return SchemeRun(scheme, {k: [float(v) for v in vs] for k, vs in history.history.items()},
                     wall_time, init)


def markdown_table(rows: list[dict], target: float) -> str:
    headers = {
        "initialization": "initialization",
        "train_loss": "train loss",
        "train_accuracy": "train acc",
        "val_loss": "val loss",
        "val_accuracy": "val acc",
        "best_val_accuracy": "best val acc",
        "epoch_to_target": f"first epoch ≥ {target:.0%} val acc",
        "wall_time_s": "wall time (s)",
    }

    def cell(key: str, value) -> str:
        if isinstance(value, str):
            return value
        return f"{value:.1f}" if key == "wall_time_s" else f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers.values()) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(key, row[key]) for key in headers) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def findings_markdown(runs: list[SchemeRun]) -> str:
    """kinit's plain-word findings on each initialized model, as a Markdown list."""
    lines = ["Findings at initialization (kinit diagnostics on the probe batch):", ""]
    for run in runs:
        lines.append(f"- **{run.scheme.label}**: " + ("; ".join(run.init.findings) or "none"))
    return "\n".join(lines) + "\n"


def write_results(rows: list[dict], report: str, output_dir: Path) -> tuple[Path, Path]:
    csv_path, md_path = output_dir / "results.csv", output_dir / "results.md"
    with open(csv_path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(report)
    return csv_path, md_path


def plot_curves(runs: list[SchemeRun], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (acc_axis, loss_axis) = plt.subplots(1, 2, figsize=(15, 5))
    for run in runs:
        epochs = range(1, len(run.history["val_accuracy"]) + 1)
        acc_axis.plot(epochs, run.history["val_accuracy"], marker="o", label=run.scheme.label)
        loss_axis.plot(epochs, run.history["val_loss"], marker="o", label=run.scheme.label)
    acc_axis.set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy")
    loss_axis.set(title="Validation loss", xlabel="epoch", ylabel="sparse categorical cross-entropy",
                  yscale="log")
    loss_axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.suptitle("Fashion-MNIST, 784-256-128-10 dropout MLP, by kernel initialization")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_activation_std(runs: list[SchemeRun], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(11, 5))
    for run in runs:
        layers, stds = zip(*run.init.activation_std)
        axis.plot(layers, stds, marker="o", label=run.scheme.label)
    # symlog keeps the zero-initialized network (std exactly 0) on the plot.
    axis.set_yscale("symlog", linthresh=1e-3)
    axis.set(title="Activation std per layer at initialization (probe batch)",
             xlabel="layer", ylabel="std of the layer output")
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


@dataclasses.dataclass
class Comparison:
    output_dir: Path
    log_dir: Path
    rows: list[dict]
    files: list[Path]


def run(args: argparse.Namespace) -> Comparison:
    selected, notices = scheme_registry.select(scheme_registry.COMPARISON, args.schemes)
    for notice in notices:
        print(f"note: {notice}", flush=True)
    if not selected:
        raise SystemExit("no scheme left to run.")

    data = prepare_data(args)
    print(f"Fashion-MNIST from {data.source}: {len(data.x_train)} training, "
          f"{len(data.x_val)} validation examples; {args.epochs} epoch(s) per scheme.", flush=True)
    log_dir = args.output_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    runs = []
    for index, scheme in enumerate(selected, start=1):
        print(f"[{index}/{len(selected)}] {scheme.label} ({scheme.name})", flush=True)
        result = train_scheme(scheme, data, args, log_dir / scheme.name)
        runs.append(result)
        print(f"    val acc {result.history['val_accuracy'][-1]:.4f}, "
              f"val loss {result.history['val_loss'][-1]:.4f}, {result.wall_time:.1f} s", flush=True)

    rows = [result.row(args.target_accuracy) for result in runs]
    report = markdown_table(rows, args.target_accuracy) + "\n" + findings_markdown(runs)
    files = list(write_results(rows, report, args.output_dir))
    files.append(plot_curves(runs, args.output_dir / "validation_curves.png"))
    files.append(plot_activation_std(runs, args.output_dir / "activation_std_at_init.png"))
    history_path = args.output_dir / "histories.json"
    history_path.write_text(json.dumps(
        {r.scheme.name: {"history": r.history, "init": dataclasses.asdict(r.init)}
         for r in runs},
        indent=1,
    ))
    files.append(history_path)

    print()
    print(report)
    for path in files:
        print(f"saved {path}")
    print(f"TensorBoard runs in {log_dir}; open them with:\n    tensorboard --logdir {log_dir}")
    return Comparison(args.output_dir, log_dir, rows, files)


def main(argv: Optional[Sequence[str]] = None) -> Comparison:
    return run(parse_args(argv))


if __name__ == "__main__":
    try:
        main()
    except (DataNotFoundError, IdxFormatError, PermissionError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
