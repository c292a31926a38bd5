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
import math
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

# Keras, TensorFlow and kinit's diagnostics are imported where they are used:
# the flags are checked first, in a process whose stderr TensorFlow's import
# has not yet written to, so that a bad flag costs one line and no wait.
import numpy as np  # noqa: E402

import schemes as scheme_registry  # noqa: E402
from fashion_mnist_data import (  # noqa: E402
    IMAGE_SHAPE,
    NUM_CLASSES,
    TEST_EXAMPLES,
    TRAIN_EXAMPLES,
    DataNotFoundError,
    IdxFormatError,
    load_fashion_mnist,
)

QUICK = {"epochs": 2, "train_size": 3000, "test_size": 1000}
FULL = {"epochs": 10, "train_size": None, "test_size": None}
HIDDEN = [256, 128]
SEED_MAX = 2**32 - 1  # NumPy's and Keras's global seeds are 32-bit
PROBE_MAX = 4096  # kinit.callbacks.observe.MAX_PROBE_EXAMPLES (not imported here: it loads Keras)
#: What a comparison writes into its output directory.
OUTPUTS = {
    "logs": "logs",
    "csv": "results.csv",
    "markdown": "results.md",
    "curves": "validation_curves.png",
    "activation_std": "activation_std_at_init.png",
    "histories": "histories.json",
}


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (the problem, no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def bounded(kind: type, low: float, high: float = math.inf, *, open_low: bool = False,
            open_high: bool = False):
    """An argparse type: a finite `kind` (int or float) between `low` and `high`,
    with the open ends excluded; the error names the value and the range."""
    noun = "an integer" if kind is int else "a number"
    if high == math.inf:
        allowed = f"{noun} {'>' if open_low else '≥'} {low}"
    else:
        allowed = f"{noun} in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not (
            (kind is int or math.isfinite(value))  # a huge int overflows isfinite
            and (low < value if open_low else low <= value)
            and (value < high if open_high else value <= high)
        ):
            raise argparse.ArgumentTypeError(f"must be {allowed}; received {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    names = [scheme.name for scheme in scheme_registry.COMPARISON]
    parser = Parser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--schemes", nargs="+", default=names, choices=names, metavar="NAME",
        help=f"schemes to train, in the order given, each once, from: {', '.join(names)} "
             "(default: all of them)")
    add("--quick", action="store_true",
        help=f"{QUICK['train_size']} training and {QUICK['test_size']} validation examples, "
             f"{QUICK['epochs']} epochs; explicit flags still win (default: off)")
    add("--epochs", type=bounded(int, 1),
        help=f"epochs per scheme (default: {FULL['epochs']}; {QUICK['epochs']} with --quick)")
    add("--train-size", type=bounded(int, 1, TRAIN_EXAMPLES),
        help=f"random training subset (default: all {TRAIN_EXAMPLES}; {QUICK['train_size']} with --quick)")
    add("--test-size", type=bounded(int, 1, TEST_EXAMPLES),
        help=f"random validation subset of the test split "
             f"(default: all {TEST_EXAMPLES}; {QUICK['test_size']} with --quick)")
    add("--batch-size", type=bounded(int, 1), default=128,
        help="training batch size (default: %(default)s)")
    add("--learning-rate", type=bounded(float, 0, open_low=True), default=1e-3,
        help="Adam's learning rate (default: %(default)s)")
    add("--hidden", type=bounded(int, 1), nargs="+", default=HIDDEN,
        help=f"hidden layer widths (default: {' '.join(map(str, HIDDEN))})")
    add("--dropout", type=bounded(float, 0, 1, open_high=True), default=0.2,
        help="dropout rate after each hidden layer (default: %(default)s)")
    add("--probe-size", type=bounded(int, 2, PROBE_MAX), default=256,
        help="training examples in the fixed diagnostics probe batch (default: %(default)s)")
    add("--target-accuracy", type=bounded(float, 0, 1), default=0.85,
        help="the table reports the first epoch reaching this validation accuracy "
             "(default: %(default)s)")
    add("--seed", type=bounded(int, 0, SEED_MAX), default=0,
        help="fixes the subsets, the data order, dropout and the initial weights (default: %(default)s)")
    add_data_flags(add)
    add("--output-dir", type=Path,
        help="where logs, table and plots go; one that already holds an earlier comparison's "
             "is refused (default: runs/fashion_mnist/<timestamp>)")
    add("--quiet", action="store_true",
        help="no Keras progress bars; one line per scheme and the results (default: off)")
    return parser


def add_data_flags(add) -> None:
    """``--data-dir`` and ``--no-download``, the routes of `load_fashion_mnist`."""
    add("--data-dir", type=Path,
        help="a directory with the four Fashion-MNIST IDX .gz files (default: none; search "
             "Keras's cache and Debian's path, then install Debian's package or download)")
    add("--no-download", action="store_true",
        help="use only files already on this machine: never install Debian's package "
             "nor try Keras's download (default: off)")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The flags, with the mode's defaults filled in, checked before anything is loaded or written."""
    return checked_args(build_parser(), argv, QUICK, FULL, "fashion_mnist", flags_problem)


def checked_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]], quick: dict, full: dict,
                 runs: str, problem_of) -> argparse.Namespace:
    """`parser`'s flags, the unset ones taken from the `quick` or `full`
    mode, the output directory defaulting to ``runs/<runs>/<timestamp>``;
    ``problem_of(args)`` ends the program with one line on stderr."""
    args = parser.parse_args(argv)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.output_dir is None:
        args.output_dir = Path("runs", runs, time.strftime("%Y%m%d-%H%M%S"))
    problem = problem_of(args)
    if problem:
        parser.error(problem)
    return args


def flags_problem(args: argparse.Namespace) -> Optional[str]:
    """What the flags ask that cannot be done together, or None."""
    repeated = sorted({name for name in args.schemes if args.schemes.count(name) > 1})
    if repeated:
        return (f"argument --schemes: {', '.join(repeated)} given more than once; "
                "each scheme is one run, name it once")
    train_size = TRAIN_EXAMPLES if args.train_size is None else args.train_size
    return probe_or_output_problem(args, train_size)


def probe_or_output_problem(args: argparse.Namespace, train_size: int, outputs: Optional[dict] = None,
                            what: str = "comparison") -> Optional[str]:
    """A probe larger than the `train_size` examples it is drawn from, or an
    output directory the `what` cannot write into (`output_dir_problem`), or None."""
    if args.probe_size > train_size:
        return (f"argument --probe-size: {args.probe_size} is more than the {train_size} training "
                "examples it is drawn from (--train-size)")
    problem = output_dir_problem(args.output_dir, outputs, what)
    return f"argument --output-dir: {args.output_dir} {problem}" if problem else None


def output_dir_problem(path: Path, outputs: Optional[dict] = None, what: str = "comparison") -> Optional[str]:
    """Why the `what` cannot write into `path` (a file, or a directory that
    already holds one of its `outputs`, default `OUTPUTS`), or None."""
    if path.exists() and not path.is_dir():
        return "is a file, not a directory"
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        return f"lies under {blocking}, which is a file, not a directory"
    earlier = [name for name in (outputs or OUTPUTS).values() if (path / name).exists()]
    if earlier:
        return (f"already holds {', '.join(earlier)} of an earlier {what}; "
                "choose a new directory or remove them")
    return None


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

    def subset(x: np.ndarray, y: np.ndarray, size: Optional[int], split: str, flag: str):
        if size is not None and size > len(x):
            print(f"note: {raw.source} has {len(x)} {split} examples, fewer than {flag} {size}; "
                  f"using all {len(x)}.", flush=True)
        if size is not None and size < len(x):
            keep = np.sort(rng.choice(len(x), size, replace=False))
            x, y = x[keep], y[keep]
        return (x.astype("float32") / 255.0), y.astype("int32")

    x_train, y_train = subset(raw.x_train, raw.y_train, args.train_size, "training", "--train-size")
    x_val, y_val = subset(raw.x_test, raw.y_test, args.test_size, "test", "--test-size")
    probe = (x_train[: args.probe_size], y_train[: args.probe_size])
    return Data(x_train, y_train, x_val, y_val, probe, raw.source)


def build_model(scheme: scheme_registry.Scheme, args: argparse.Namespace) -> keras.Model:
    """The article's network; fixed layer names so runs share TensorBoard tags."""
    import keras

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
    import tensorflow as tf

    # An explicit shuffle seed makes the data order part of --seed.
    return (
        tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
        .shuffle(len(data.x_train), seed=args.seed, reshuffle_each_iteration=True)
        .batch(args.batch_size)
    )


def logging_callbacks(run_dir: Path, probe) -> list[keras.callbacks.Callback]:
    """Keras's metrics plus kinit's diagnostics."""
    import keras

    import kinit.callbacks as diagnostics

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
    import kinit.callbacks as diagnostics

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
    import keras

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
    csv_path, md_path = output_dir / OUTPUTS["csv"], output_dir / OUTPUTS["markdown"]
    with open(csv_path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(report)
    return csv_path, md_path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot().close(figure)
    return path


def curves_figure(runs: list[SchemeRun]):
    """Validation accuracy and loss per epoch, every scheme; whole epochs on the x axes."""
    from matplotlib.ticker import MaxNLocator

    figure, (acc_axis, loss_axis) = pyplot().subplots(1, 2, figsize=(15, 5))
    for run in runs:
        epochs = range(1, len(run.history["val_accuracy"]) + 1)
        acc_axis.plot(epochs, run.history["val_accuracy"], marker="o", label=run.scheme.label)
        loss_axis.plot(epochs, run.history["val_loss"], marker="o", label=run.scheme.label)
    acc_axis.set(title="Validation accuracy", xlabel="epoch", ylabel="accuracy")
    loss_axis.set(title="Validation loss", xlabel="epoch", ylabel="sparse categorical cross-entropy",
                  yscale="log")
    for axis in (acc_axis, loss_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.suptitle("Fashion-MNIST, 784-256-128-10 dropout MLP, by kernel initialization")
    return figure


def activation_std_figure(runs: list[SchemeRun]):
    """Per-layer activation std at initialization, every scheme."""
    figure, axis = pyplot().subplots(figsize=(11, 5))
    for run in runs:
        layers, stds = zip(*run.init.activation_std)
        axis.plot(layers, stds, marker="o", label=run.scheme.label)
    # symlog keeps the zero-initialized network (std exactly 0) on the plot.
    axis.set_yscale("symlog", linthresh=1e-3)
    axis.set(title="Activation std per layer at initialization (probe batch)",
             xlabel="layer", ylabel="std of the layer output")
    axis.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return figure


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
    log_dir = args.output_dir / OUTPUTS["logs"]
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
    files.append(save_figure(curves_figure(runs), args.output_dir / OUTPUTS["curves"]))
    files.append(save_figure(activation_std_figure(runs), args.output_dir / OUTPUTS["activation_std"]))
    history_path = args.output_dir / OUTPUTS["histories"]
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
