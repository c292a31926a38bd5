"""Train residual networks of growing depth for one epoch: He, Fixup, He + batch normalization.

Reproduces the shape of Fig. 3 of Zhang, Dauphin & Ma 2019 ("Fixup
Initialization: Residual Learning Without Normalization"): first-epoch
performance against depth, with the learning rate batch normalization is
trained with (SGD, 0.1, momentum 0.9). Without normalization, He
initialization degrades or diverges as the network deepens, while Fixup
tracks batch normalization. The epoch is short (a subset, for two CPU
cores), and in its first steps at that learning rate, without warm-up, every
variant occasionally blows up, whichever the depth; the global gradient
norm is clipped at 1 (``--clipnorm``, 0 turns it off) so that what depth
does shows through.

The networks are He et al.'s (2016) ResNets for small images, for 28×28
Fashion-MNIST: a 3×3 convolution, three stages of n residual blocks with
16, 32 and 64 channels (the first block of stages 2 and 3 halves the
resolution and projects its shortcut with a 1×1 convolution), global
average pooling and a 10-way softmax: depth 6n + 2 (8, 20, 32, 56). Each
block is conv-ReLU-conv added to its shortcut, then ReLU; convolutions have
no biases. Three variants:

* ``he``: no normalization, kinit's auto policy (He normal for every
  convolution: each is followed by a ReLU);
* ``fixup``: the same network with Fixup's scalar biases (before every
  convolution, ReLU and the classifier) and a scalar multiplier at the end
  of every residual branch (`kinit.Bias`, `kinit.Scale`), both trained at a
  tenth of the learning rate as in the paper's code; initialized by
  kinit's Fixup recipe, ``kinit.Fixup(mode="fan_in")``: the last
  convolution of every residual branch and the classifier at 0, the other
  convolutions of the branches He normal scaled by L^(-1/(2m-2)) = L^(-1/2)
  (L residual branches of m = 2 layers), the stem and shortcuts He normal,
  the scalar biases 0 and multipliers 1. (He's fan_in: the recipe's default
  fan_out, the reference code's for the branches, would make the stem, which
  reads one channel, 4× smaller.)
* ``he_bn``: batch normalization after every convolution (momentum 0.9 of
  the moving statistics, PyTorch's default), He normal.

For every run it measures the signal propagation at initialization (Brock,
De & Smith 2021: per residual block the average channel squared mean and
variance of its output and the variance of its residual branch), trains one
epoch on a random subset of the training images, and evaluates on a subset
of the test images. It prints and saves the table (Markdown and CSV), the
signal-propagation plot of the deepest networks, the accuracy-by-depth plot,
and one TensorBoard run per network (Keras's metrics and kinit's
diagnostics, which log the signal propagation at step 0).

Usage:
    python examples/residual_depth.py              # depths 8 20 32 56, 10000 training images
    python examples/residual_depth.py --quick      # depths 8 14, 512 training images
    tensorboard --logdir <output dir>/logs         # printed at the end
"""

from __future__ import annotations

import argparse
import contextlib
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

# Keras, TensorFlow and kinit are imported where they are used: the flags are
# checked first, so that a bad flag costs one line and no wait.
import numpy as np  # noqa: E402

from fashion_mnist_comparison import (  # noqa: E402
    PROBE_MAX,
    SEED_MAX,
    Parser,
    add_data_flags,
    bounded,
    checked_args,
    probe_or_output_problem,
)
from fashion_mnist_data import (  # noqa: E402
    IMAGE_SHAPE,
    NUM_CLASSES,
    TEST_EXAMPLES,
    TRAIN_EXAMPLES,
    DataNotFoundError,
    IdxFormatError,
    load_fashion_mnist,
)

VARIANTS = {
    "he": "He, no normalization",
    "fixup": "Fixup, no normalization",
    "he_bn": "He + batch normalization",
}
QUICK = {"depths": [8, 14], "train_size": 512, "test_size": 256, "probe_size": 64}
FULL = {"depths": [8, 20, 32, 56], "train_size": 10000, "test_size": 2000, "probe_size": 128}
STAGE_WIDTHS = (16, 32, 64)
#: The layers kinit's diagnostics log (a regular expression searched in layer
#: paths): the stem, the last convolution of every residual branch, every
#: block's sum (its output's histogram is the signal through the blocks) and
#: the classifier. All layers would triple the cost of each log.
DIAGNOSED_LAYERS = r"(^stem|_conv2|_add|^head)$"
#: What a run writes into its output directory.
OUTPUTS = {
    "logs": "logs",
    "csv": "results.csv",
    "markdown": "results.md",
    "signal_propagation": "signal_propagation.png",
    "accuracy": "first_epoch_by_depth.png",
    "json": "results.json",
}


# Flags ------------------------------------------------------------------------------------------

def depth(text: str) -> int:
    """An argparse type: a ResNet depth 6n + 2 with n ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 8 or (value - 2) % 6:
        raise argparse.ArgumentTypeError(f"must be 6n + 2 for an integer n ≥ 1 (8, 14, 20, …); received {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true",
        help=f"depths {' '.join(map(str, QUICK['depths']))}, {QUICK['train_size']} training and "
             f"{QUICK['test_size']} test examples; explicit flags still win (default: off)")
    add("--depths", type=depth, nargs="+",
        help=f"network depths, each 6n + 2 (default: {' '.join(map(str, FULL['depths']))})")
    add("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME",
        help=f"initializations to train, from: {', '.join(VARIANTS)} (default: all)")
    add("--train-size", type=bounded(int, 1, TRAIN_EXAMPLES),
        help=f"random training subset for the one epoch (default: {FULL['train_size']}; "
             f"{QUICK['train_size']} with --quick)")
    add("--test-size", type=bounded(int, 1, TEST_EXAMPLES),
        help=f"random test subset (default: {FULL['test_size']}; {QUICK['test_size']} with --quick)")
    add("--batch-size", type=bounded(int, 1), default=128, help="training batch size (default: %(default)s)")
    add("--learning-rate", type=bounded(float, 0, open_low=True), default=0.1,
        help="SGD's learning rate, momentum 0.9 (default: %(default)s, batch normalization's)")
    add("--clipnorm", type=bounded(float, 0), default=1.0,
        help="clip the global norm of each step's gradient to this; 0 for no clipping "
             "(default: %(default)s)")
    add("--probe-size", type=bounded(int, 2, PROBE_MAX),
        help="training examples in the probe batch of the signal propagation and the diagnostics "
             f"(default: {FULL['probe_size']}; {QUICK['probe_size']} with --quick)")
    add("--seed", type=bounded(int, 0, SEED_MAX), default=0,
        help="fixes the subsets, the data order and the initial weights (default: %(default)s)")
    add_data_flags(add)
    add("--output-dir", type=Path,
        help="where logs, table and plots go; one that already holds an earlier run's is refused "
             "(default: runs/residual_depth/<timestamp>)")
    add("--quiet", action="store_true", help="no Keras progress bars (default: off)")
    return parser


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The flags, with the mode's defaults filled in, checked before anything is loaded or written."""
    return checked_args(build_parser(), argv, QUICK, FULL, "residual_depth", flags_problem)


def flags_problem(args: argparse.Namespace) -> Optional[str]:
    """What the flags ask that cannot be done together, or None."""
    for flag, values in (("--depths", args.depths), ("--variants", args.variants)):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            return f"argument {flag}: {', '.join(repeated)} given more than once; name each once"
    return probe_or_output_problem(args, args.train_size, OUTPUTS, "run")


# The networks -----------------------------------------------------------------------------------

def blocks_per_stage(network_depth: int) -> int:
    return (network_depth - 2) // 6


#: Fixup trains its scalar biases and multipliers at a tenth of the learning
#: rate (the reference code's optimizer groups). Keras's optimizers have one
#: rate, so the scalars pass on a tenth of their gradient instead: with SGD
#: (and momentum) the two are the same.
SCALAR_RATE = 0.1


def scalar_layers():
    """`kinit.Bias` and `kinit.Scale` whose gradient is scaled by
    `SCALAR_RATE` (defined on first use: Keras is imported only once the
    flags are checked). Their values are kinit's, so `kinit.initialize` sets
    them to 0 and 1 under every policy."""
    global TenthRateBias, TenthRateScale
    if "TenthRateBias" in globals():
        return TenthRateBias, TenthRateScale
    import keras

    import kinit

    def tenth_rate(scalar, dtype):
        # Forward: the scalar itself; backward: SCALAR_RATE times its gradient.
        frozen = keras.ops.stop_gradient(scalar)
        return keras.ops.cast(frozen + SCALAR_RATE * (scalar - frozen), dtype)

    class TenthRateBias(kinit.Bias):
        """Fixup's scalar bias, x + b (b = 0 at first), trained at a tenth of the learning rate."""

        def call(self, inputs):
            return inputs + tenth_rate(self.scalar, inputs.dtype)

    class TenthRateScale(kinit.Scale):
        """Fixup's scalar multiplier, s·x (s = 1 at first), trained at a tenth of the learning rate."""

        def call(self, inputs):
            return inputs * tenth_rate(self.scalar, inputs.dtype)

    return TenthRateBias, TenthRateScale


def build_resnet(network_depth: int, normalization: bool, seed: Optional[int] = None, scalars: bool = False):
    """He et al.'s ResNet-(6n + 2) for 28×28×1 images (see the module docstring).

    Layers are named ``stem``, ``stage<s>_block<b>_{conv1,conv2,shortcut,add}``
    (``_bn1``, ``_bn2``, ``_shortcut_bn`` with normalization) and ``head``, so
    runs of one depth share their TensorBoard tags. With `scalars`, Fixup's
    scalar biases before every convolution, ReLU and the classifier, and a
    scalar multiplier and bias at the end of every residual branch. Keras's
    default initializers; `initialize_variant` re-initializes.
    """
    import keras
    from keras import layers

    if seed is not None:
        keras.utils.set_random_seed(seed)
    Bias, Scale = scalar_layers()

    def conv(filters: int, size: int, stride: int, name: str):
        return layers.Conv2D(filters, size, strides=stride, padding="same", use_bias=False, name=name)

    def norm(x, name: str):
        # PyTorch's running-average momentum 0.1, the papers' (Keras's 0.99
        # leaves the moving statistics far from the batch's after one short epoch).
        return layers.BatchNormalization(momentum=0.9, name=name)(x) if normalization else x

    def bias(x, name: str):
        return Bias(name=name)(x) if scalars else x

    inputs = keras.Input((*IMAGE_SHAPE, 1), name="image")
    x = layers.ReLU(name="stem_relu")(bias(norm(conv(STAGE_WIDTHS[0], 3, 1, "stem")(inputs), "stem_bn"), "stem_bias"))
    for stage, filters in enumerate(STAGE_WIDTHS, start=1):
        for block in range(1, blocks_per_stage(network_depth) + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            name = f"stage{stage}_block{block}"
            entry = bias(x, f"{name}_bias1a")
            h = conv(filters, 3, stride, f"{name}_conv1")(entry)
            h = layers.ReLU(name=f"{name}_relu1")(bias(norm(h, f"{name}_bn1"), f"{name}_bias1b"))
            h = norm(conv(filters, 3, 1, f"{name}_conv2")(bias(h, f"{name}_bias2a")), f"{name}_bn2")
            if scalars:
                h = Bias(name=f"{name}_bias2b")(Scale(name=f"{name}_scale")(h))
            shortcut = x
            if stride != 1 or x.shape[-1] != filters:
                shortcut = norm(conv(filters, 1, stride, f"{name}_shortcut")(entry), f"{name}_shortcut_bn")
            x = layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([shortcut, h]))
    x = bias(layers.GlobalAveragePooling2D(name="pool")(x), "head_bias")
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="head")(x)
    suffix = "_bn" if normalization else "_fixup" if scalars else ""
    return keras.Model(inputs, outputs, name=f"resnet{network_depth}{suffix}")


def initialize_variant(model, variant: str, seed: int):
    """Re-initialize `model` for `variant`; returns kinit's report."""
    import kinit

    if variant == "fixup":
        # He's fan_in, not the recipe's default fan_out: the stem reads one
        # channel (fan_in 9, fan_out 144), and a fan_out stem would start the
        # network, and the zero classifier's inputs, 4× smaller.
        return kinit.initialize(model, policy=kinit.Fixup(mode="fan_in"), seed=seed)
    return kinit.initialize(model, seed=seed)


def build_variant(variant: str, network_depth: int, seed: int):
    model = build_resnet(network_depth, normalization=variant == "he_bn", seed=seed, scalars=variant == "fixup")
    initialize_variant(model, variant, seed)
    return model


# Data -------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Data:
    """Standardized training and test subsets, and the probe batch."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    probe: np.ndarray
    source: str


def prepare_data(args: argparse.Namespace) -> Data:
    raw = load_fashion_mnist(args.data_dir, download=not args.no_download)
    rng = np.random.default_rng(args.seed)

    def subset(x, y, size, split: str, flag: str):
        if size > len(x):
            print(f"note: {raw.source} has {len(x)} {split} examples, fewer than {flag} {size}; "
                  f"using all {len(x)}.", flush=True)
        if size < len(x):
            keep = np.sort(rng.choice(len(x), size, replace=False))
            x, y = x[keep], y[keep]
        return x.astype("float32")[..., None] / 255.0, y.astype("int32")

    x_train, y_train = subset(raw.x_train, raw.y_train, args.train_size, "training", "--train-size")
    x_test, y_test = subset(raw.x_test, raw.y_test, args.test_size, "test", "--test-size")
    mean, std = float(x_train.mean()), float(x_train.std()) or 1.0
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return Data(x_train, y_train, x_test, y_test, x_train[: args.probe_size], raw.source)


# One run ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    variant: str
    depth: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    wall_time_s: float
    signal: list  # the signal-propagation rows at initialization, as dicts

    @property
    def label(self) -> str:
        return VARIANTS[self.variant]


def train_run(variant: str, network_depth: int, data: Data, args: argparse.Namespace, run_dir: Path) -> Run:
    import keras
    import tensorflow as tf

    import kinit.callbacks as diagnostics

    start = time.perf_counter()
    model = build_variant(variant, network_depth, args.seed)
    optimizer = keras.optimizers.SGD(args.learning_rate, momentum=0.9, global_clipnorm=args.clipnorm or None)
    model.compile(optimizer=optimizer,
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    signal = diagnostics.signal_propagation(model, data.probe)
    dataset = (tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
               .shuffle(len(data.x_train), seed=args.seed).batch(args.batch_size))
    probe = (data.probe, data.y_train[: len(data.probe)])
    callbacks = [keras.callbacks.TensorBoard(str(run_dir), write_graph=False),
                 diagnostics.InitDiagnostics(str(run_dir / "diagnostics"), probe_data=probe,
                                             layer_filter=DIAGNOSED_LAYERS)]
    history = model.fit(dataset, epochs=1, shuffle=False, callbacks=callbacks,
                        verbose=0 if args.quiet else (1 if sys.stdout.isatty() else 2))
    test_loss, test_accuracy = model.evaluate(data.x_test, data.y_test, batch_size=256, verbose=0)
    wall_time = time.perf_counter() - start
    return Run(variant, network_depth, float(history.history["loss"][0]), float(history.history["accuracy"][0]),
               float(test_loss), float(test_accuracy), wall_time, [dataclasses.asdict(row) for row in signal])


# Results ----------------------------------------------------------------------------------------

def number(value: float, digits: int = 4) -> str:
    return "NaN (diverged)" if not math.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(runs: list[Run], variants: Sequence[str], depths: Sequence[int]) -> str:
    """One row per depth; per variant its train loss, train accuracy and test accuracy."""
    found = {(run.variant, run.depth): run for run in runs}
    measures = ("train loss", "train acc", "test acc")
    header = ["depth"] + [f"{VARIANTS[v]}: {what}" for v in variants for what in measures]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for network_depth in depths:
        cells = [str(network_depth)]
        for variant in variants:
            run = found[(variant, network_depth)]
            cells += [number(run.train_loss), number(run.train_accuracy), number(run.test_accuracy)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def signal_table(runs: list[Run], network_depth: int) -> str:
    """The signal propagation of the networks of one depth at their last block,
    and its range over the blocks."""
    lines = ["| variant | blocks | channel variance (first → last block) | residual variance (largest) |",
             "|---|---|---|---|"]
    for run in runs:
        if run.depth != network_depth or not run.signal:
            continue
        variances = [row["channel_variance"] for row in run.signal]
        residual = [row["residual_variance"] for row in run.signal if row["residual_variance"] is not None]
        lines.append(f"| {run.label} | {len(run.signal)} | {variances[0]:.3g} → {variances[-1]:.3g} | "
                     f"{max(residual) if residual else float('nan'):.3g} |")
    return "\n".join(lines) + "\n"


def write_csv(runs: list[Run], path: Path) -> Path:
    fields = ["variant", "depth", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "wall_time_s"]
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=fields)
        writer.writeheader()
        writer.writerows({key: getattr(run, key) for key in fields} for run in runs)
    return path


def accuracy_figure(runs: list[Run], variants: Sequence[str], path: Path) -> Path:
    """First-epoch train and test accuracy against depth (Fixup's Fig. 3)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2))
    axes = figure.subplots(1, 2)
    for axis, key, title in zip(axes, ("train_accuracy", "test_accuracy"),
                                ("first-epoch train accuracy", "test accuracy after one epoch")):
        for variant in variants:
            mine = sorted((run for run in runs if run.variant == variant), key=lambda run: run.depth)
            axis.plot([run.depth for run in mine], [getattr(run, key) for run in mine], marker="o",
                      label=VARIANTS[variant])
        axis.set(title=title, xlabel="depth", ylabel="accuracy", ylim=(0, 1))
        axis.grid(True, alpha=0.3)
    axes[0].legend(fontsize="small")
    figure.suptitle("Fashion-MNIST ResNets, one epoch of SGD at batch normalization's learning rate")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def signal_figure(runs: list[Run], network_depth: int, path: Path) -> Path:
    """The signal-propagation plot of the networks of one depth."""
    from kinit.callbacks import BlockRow, SignalPropagation, plot_signal_propagation

    reports = {run.label: SignalPropagation([BlockRow(**row) for row in run.signal])
               for run in runs if run.depth == network_depth}
    title = f"Signal propagation at initialization, ResNet-{network_depth} (probe batch, training mode)"
    return plot_signal_propagation(reports, path, title)


@dataclasses.dataclass
class Result:
    output_dir: Path
    log_dir: Path
    runs: list[Run]
    files: list[Path]
    wall_time_s: float


@contextlib.contextmanager
def quiet_logs():
    """The networks without normalization diverge by design: while the runs
    train, kinit's findings about them (NaN in every layer) go to
    TensorBoard's Text tab only, not the console, and TensorFlow's notes on
    tracing one function per network are silenced. Restored afterwards."""
    import logging

    import tensorflow as tf

    loggers = [logging.getLogger("kinit.callbacks"), tf.get_logger()]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def run(args: argparse.Namespace) -> Result:
    with quiet_logs():
        return _run(args)


def _run(args: argparse.Namespace) -> Result:
    start = time.perf_counter()
    data = prepare_data(args)
    clipping = f", gradient norm clipped at {args.clipnorm:g}" if args.clipnorm else ""
    print(f"Fashion-MNIST from {data.source}: {len(data.x_train)} training, {len(data.x_test)} test examples; "
          f"one epoch per network, SGD {args.learning_rate} (momentum 0.9{clipping}), batch {args.batch_size}.",
          flush=True)
    log_dir = args.output_dir / OUTPUTS["logs"]
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    total = len(args.depths) * len(args.variants)
    for network_depth in args.depths:
        for variant in args.variants:
            print(f"[{len(runs) + 1}/{total}] ResNet-{network_depth}, {VARIANTS[variant]}", flush=True)
            result = train_run(variant, network_depth, data, args, log_dir / f"{variant}_depth{network_depth}")
            runs.append(result)
            print(f"    train loss {number(result.train_loss)}, train acc {number(result.train_accuracy)}, "
                  f"test acc {number(result.test_accuracy)}, {result.wall_time_s:.1f} s", flush=True)
    deepest = max(args.depths)
    report = (markdown_table(runs, args.variants, args.depths) + "\n"
              + f"Signal propagation at initialization, ResNet-{deepest}:\n\n" + signal_table(runs, deepest))
    files = [write_csv(runs, args.output_dir / OUTPUTS["csv"])]
    (args.output_dir / OUTPUTS["markdown"]).write_text(report)
    files.append(args.output_dir / OUTPUTS["markdown"])
    files.append(signal_figure(runs, deepest, args.output_dir / OUTPUTS["signal_propagation"]))
    files.append(accuracy_figure(runs, args.variants, args.output_dir / OUTPUTS["accuracy"]))
    wall_time = time.perf_counter() - start
    json_path = args.output_dir / OUTPUTS["json"]
    json_path.write_text(json.dumps({"wall_time_s": wall_time, "args": {k: str(v) for k, v in vars(args).items()},
                                     "runs": [dataclasses.asdict(r) for r in runs]}, indent=1))
    files.append(json_path)
    print()
    print(report)
    for path in files:
        print(f"saved {path}")
    print(f"total wall time {wall_time:.0f} s")
    print(f"TensorBoard runs in {log_dir} (kinit's findings in the Text tab); open them with:\n"
          f"    tensorboard --logdir {log_dir}")
    return Result(args.output_dir, log_dir, runs, files, wall_time)


def main(argv: Optional[Sequence[str]] = None) -> Result:
    return run(parse_args(argv))


if __name__ == "__main__":
    try:
        main()
    except (DataNotFoundError, IdxFormatError, PermissionError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
