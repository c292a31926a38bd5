"""Epoch time with diagnostics callbacks, against the same training without one.

Models: the FashionMNIST 256-128-10 MLP (real data from
/usr/share/datasets/fashion-mnist or --data-dir if present, otherwise random
data of the same size) and a small CNN (Conv2D ×3 on 28×28). Variants,
interleaved in every repetition (their order rotates):

* ``none`` — no callback;
* ``keras TensorBoard`` — ``keras.callbacks.TensorBoard(histogram_freq=1)``
  (weight histograms only);
* ``InitDiagnostics defaults`` — weights, activations and gradients on a
  256-example probe batch, 30 buckets;
* ``InitDiagnostics max`` — the same on a 1024-example probe batch with 100
  buckets.

An epoch's time runs from ``on_epoch_begin`` to the end of every callback's
``on_epoch_end`` (where the histograms are written); the first epoch (tracing)
is left out. On a shared machine epoch times wander by more than the
overhead, so the time spent inside the callback's own ``on_epoch_end`` is
also measured, and shown as a fraction of the no-callback epoch ("hook
share"). The step-0 log happens in ``on_train_begin`` and shows in the
whole-``fit`` time. Prints Markdown tables: medians over ``--repeats`` with
min–max, and ratios to ``none`` computed within each repetition.

Usage:
    python benchmarks/callback_overhead.py [--repeats 3] [--epochs 3]
    python benchmarks/callback_overhead.py --smoke
    python benchmarks/callback_overhead.py --profile mlp   # where one log's time goes
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from callbacks import InitDiagnostics  # noqa: E402

DATA_DIRS = ("~/.keras/datasets/fashion-mnist", "/usr/share/datasets/fashion-mnist")
VARIANTS = ("none", "keras TensorBoard", "InitDiagnostics defaults", "InitDiagnostics max")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is not timed")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cnn-examples", type=int, default=12000, help="training examples for the CNN")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny data, 2 epochs, 1 repeat")
    parser.add_argument("--profile", choices=("mlp", "cnn"), help="profile one InitDiagnostics log")
    args = parser.parse_args()
    x, y, source = load_fashion_mnist(args.data_dir)
    if args.smoke:
        args.repeats, args.epochs, args.cnn_examples = 1, 2, 256
        x, y = x[:512], y[:512]
    if args.profile:
        profile_one_log({"mlp": mlp, "cnn": cnn}[args.profile], x, y)
        return
    print(f"# Callback overhead ({source}; {args.epochs - 1} timed epochs per run, "
          f"medians of {args.repeats} repetitions; {time.strftime('%Y-%m-%d')})\n")
    for title, build, examples in (("MLP 784-256-128-10", mlp, len(x)),
                                   ("CNN Conv2D×3, 28×28", cnn, min(args.cnn_examples, len(x)))):
        results = compare(build, x[:examples], y[:examples], args)
        print_table(f"{title}, {examples} examples, batch {args.batch_size}", results)


def compare(build, x, y, args) -> dict:
    """{variant: [(median epoch s, fit s, median on_epoch_end s) per repetition]}."""
    results = {variant: [] for variant in VARIANTS}
    for repeat in range(args.repeats):
        order = VARIANTS[repeat % len(VARIANTS):] + VARIANTS[:repeat % len(VARIANTS)]
        for variant in order:
            keras.utils.set_random_seed(repeat)
            model = build()
            timer = EpochTimer()
            with tempfile.TemporaryDirectory() as log_dir:
                callbacks = variant_callbacks(variant, log_dir, x, y)
                hook_seconds = [time_epoch_end(callback) for callback in callbacks]
                start = time.perf_counter()
                model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
                          callbacks=callbacks + [timer])
                fit_seconds = time.perf_counter() - start
            per_epoch = [sum(epoch) for epoch in zip(*hook_seconds)][1:]  # first epoch not timed
            hook = statistics.median(per_epoch) if per_epoch else 0.0
            results[variant].append((statistics.median(timer.seconds[1:]), fit_seconds, hook))
    return results


def variant_callbacks(variant: str, log_dir: str, x, y) -> list:
    if variant == "keras TensorBoard":
        return [keras.callbacks.TensorBoard(log_dir, histogram_freq=1)]
    if variant == "InitDiagnostics defaults":
        return [InitDiagnostics(log_dir, (x[:256], y[:256]))]
    if variant == "InitDiagnostics max":
        return [InitDiagnostics(log_dir, (x[:1024], y[:1024]), buckets=100)]
    return []


def time_epoch_end(callback) -> list:
    """Make `callback` record the seconds each of its on_epoch_end calls takes."""
    seconds, original = [], callback.on_epoch_end

    def on_epoch_end(epoch, logs=None):
        start = time.perf_counter()
        original(epoch, logs)
        seconds.append(time.perf_counter() - start)

    callback.on_epoch_end = on_epoch_end
    return seconds


class EpochTimer(keras.callbacks.Callback):
    """Epoch wall time, including the on_epoch_end of callbacks listed before it."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def print_table(title: str, results: dict) -> None:
    base = results["none"]
    print(f"## {title}\n")
    print("| variant | epoch s | min–max | ratio | ratio min–max | hook s | hook share | fit s | fit ratio |")
    print("|---|---:|---|---:|---|---:|---:|---:|---:|")
    for variant, runs in results.items():
        epochs = [epoch for epoch, _, _ in runs]
        ratios = [run[0] / b[0] for run, b in zip(runs, base)]
        shares = [run[2] / b[0] for run, b in zip(runs, base)]
        fit_ratios = [run[1] / b[1] for run, b in zip(runs, base)]
        print(f"| {variant} | {statistics.median(epochs):.3f} | {min(epochs):.3f}–{max(epochs):.3f} | "
              f"{statistics.median(ratios):.3f} | {min(ratios):.3f}–{max(ratios):.3f} | "
              f"{statistics.median(run[2] for run in runs):.3f} | {statistics.median(shares):.1%} | "
              f"{statistics.median(run[1] for run in runs):.2f} | {statistics.median(fit_ratios):.3f} |")
    print("\nGoal: InitDiagnostics defaults ≤ 1.10× none (epoch time).\n", flush=True)


def profile_one_log(build, x, y) -> None:
    """cProfile of the diagnostics a callback writes at the end of one epoch."""
    model = build()
    with tempfile.TemporaryDirectory() as log_dir:
        callback = InitDiagnostics(log_dir, (x[:256], y[:256]))
        model.fit(x[:2048], y[:2048], epochs=1, verbose=0, callbacks=[callback])
        callback.on_train_begin()  # reopens the event file; step 0 is not logged again
        callback.log(1)  # warm: traces for new tensor sizes happen once
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(callback.log, 2)
        print(f"one log: {time.perf_counter() - start:.3f} s")
        callback.on_train_end()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(15)
    print(stream.getvalue())


def mlp() -> keras.Model:
    model = keras.Sequential([
        keras.Input((28, 28)), keras.layers.Flatten(),
        keras.layers.Dense(256, "relu"), keras.layers.Dense(128, "relu"),
        keras.layers.Dense(10, "softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def cnn() -> keras.Model:
    model = keras.Sequential([
        keras.Input((28, 28)), keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(10, "softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def load_fashion_mnist(data_dir=None):
    """Training images (float32 in [0, 1]) and labels, and where they came from."""
    candidates = ([data_dir] if data_dir else []) + list(DATA_DIRS)
    for directory in (Path(d).expanduser() for d in candidates):
        images = directory / "train-images-idx3-ubyte.gz"
        labels = directory / "train-labels-idx1-ubyte.gz"
        if images.exists() and labels.exists():
            with gzip.open(images) as f:
                x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
            with gzip.open(labels) as f:
                y = np.frombuffer(f.read(), np.uint8, offset=8)
            return (x / np.float32(255)).astype("float32"), y.astype("int32"), f"FashionMNIST from {directory}"
    rng = np.random.default_rng(0)
    x = rng.random((60000, 28, 28), dtype=np.float32)
    return x, rng.integers(0, 10, 60000).astype("int32"), "synthetic data of FashionMNIST's size"


if __name__ == "__main__":
    main()
