"""Epoch time with diagnostics callbacks, against the same training without one.

Models: the Fashion-MNIST 784-256-128-10 MLP on all 60000 training examples
(the real data from --data-dir or the usual places, see
examples/fashion_mnist_data.py; otherwise random data of the same size) and
a small CNN (Conv2D ×3 on 28×28) on the first 12000. Variants, interleaved
in every repetition (their order rotates):

* ``none`` — no callback (the baseline of every ratio);
* ``keras TensorBoard`` — ``keras.callbacks.TensorBoard(histogram_freq=1)``
  (weight histograms only);
* ``InitDiagnostics defaults`` — weights, activations and gradients on a
  256-example probe batch, 30 buckets;
* ``InitDiagnostics max`` — the same on a 1024-example probe batch with 100
  buckets;
* ``InitDiagnostics spectra`` — the defaults with ``spectra=True`` (each
  kernel's spectral norm, stable rank and power-law α).

An epoch's time runs from ``on_epoch_begin`` to the end of every callback's
``on_epoch_end`` (where the histograms are written); the first epoch of a
run (tracing) is not timed. On a shared machine epoch times wander by more
than the overhead, so the time spent inside the callbacks' own
``on_epoch_end`` is also measured and shown as a share of the no-callback
epoch, and as a ratio to the time Keras's ``TensorBoard`` spends there in
the same repetition. The cost of the spectra is the difference between the
``on_epoch_end`` times of ``InitDiagnostics spectra`` and ``InitDiagnostics
defaults``, per repetition, and, steadier, the time spent computing them
inside ``on_epoch_end`` (timed around each kernel's); the line under each
table gives both in seconds and against Keras's ``TensorBoard``. The step-0 log happens in
``on_train_begin`` and shows in the whole-``fit`` time.

Every Keras backend is measured in a process of its own (the backend is
chosen when Keras is imported): TensorFlow, JAX and PyTorch by default, each
with a table per model; the time inside ``on_epoch_end`` is that backend's
own (its probe pass, its statistics and histograms).

Goals: ``InitDiagnostics defaults`` at most 1.10× ``none`` on every backend,
and no slower than ``keras TensorBoard`` (epoch time, MLP and CNN).

Usage:
    python benchmarks/callback_overhead.py                 # 3 repetitions of 2 epochs per backend
    python benchmarks/callback_overhead.py --backends tensorflow --repeats 5 --epochs 4
    python benchmarks/callback_overhead.py --smoke         # 512 and 256 examples, 1 repetition
    python benchmarks/callback_overhead.py --profile cnn   # where one log's time goes (this backend)
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "shared"))
import bench  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kinit.callbacks import InitDiagnostics  # noqa: E402
import kinit.callbacks.callback as callback_module  # noqa: E402

VARIANTS = ("none", "keras TensorBoard", "InitDiagnostics defaults", "InitDiagnostics max",
            "InitDiagnostics spectra")
BACKENDS = ("tensorflow", "jax", "torch")
SMOKE_EXAMPLES = {"mlp": 512, "cnn": 256}
GOAL = 1.10


@dataclasses.dataclass
class Run:
    epoch: float  # median seconds of the timed epochs
    hook: float  # median seconds inside the callbacks' on_epoch_end
    fit: float  # seconds of the whole fit, step-0 log included
    spectra: float  # median seconds of the kernels' spectra inside on_epoch_end


def main(argv=None) -> list[str]:
    parser = bench.parser(__doc__, repeats=3)
    parser.add_argument("--epochs", type=int, default=2, help="per run; the first is not timed (default 2)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cnn-examples", type=int, default=12000, help="training examples for the CNN")
    parser.add_argument("--data-dir", type=Path, help="a directory with the four Fashion-MNIST files")
    parser.add_argument("--profile", choices=("mlp", "cnn"), help="profile one InitDiagnostics log")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
                        help="Keras backends to measure, each in its own process (default: all three)")
    parser.add_argument("--models", nargs="+", choices=("mlp", "cnn"), default=["mlp", "cnn"],
                        help="models to measure (default: both)")
    args = bench.parse(parser, argv)
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (the first is not timed); received {args.epochs}")
    if args.profile is None and args.backends != [keras.backend.backend()]:
        return on_backends(args.backends, sys.argv[1:] if argv is None else list(argv))
    x, y, source = training_data(args.data_dir)
    examples = SMOKE_EXAMPLES if args.smoke else {"mlp": len(x), "cnn": min(args.cnn_examples, len(x))}
    if args.profile:
        profile_one_log(MODELS[args.profile][1], x[:examples[args.profile]], y[:examples[args.profile]])
        return []
    bench.header("Callback overhead", args.repeats,
                 f"{source}; {args.epochs - 1} timed epoch(s) per run after an untimed first epoch.")
    tables = []
    for name in args.models:
        title, build = MODELS[name]
        count = examples[name]
        results = compare(build, x[:count], y[:count], args)
        tables.append(print_table(f"{title}, {count} examples, batch {args.batch_size}, "
                                  f"backend {keras.backend.backend()}", results))
    return tables


def on_backends(backends, argv) -> list[str]:
    """Run this script once per backend, each in a fresh process; print and
    return their tables (the ``## `` sections of their output)."""
    forwarded = [arg for index, arg in enumerate(argv)
                 if arg != "--backends" and (arg.startswith("--") or not _follows(argv, index, "--backends"))]
    tables = []
    for backend in backends:
        env = dict(os.environ, KERAS_BACKEND=backend)
        process = subprocess.run([sys.executable, __file__, *forwarded, "--backends", backend],
                                 capture_output=True, text=True, env=env)
        if process.returncode != 0:
            raise RuntimeError(f"the {backend} run failed:\n{process.stderr[-3000:]}")
        print(process.stdout, end="", flush=True)
        tables += ["## " + section for section in process.stdout.split("\n## ")[1:]]
    return tables


def _follows(argv, index: int, flag: str) -> bool:
    """Whether ``argv[index]`` is one of the values given after `flag`."""
    for previous in range(index - 1, -1, -1):
        if argv[previous].startswith("--"):
            return argv[previous] == flag
    return False


def compare(build, x, y, args) -> dict[str, list[Run]]:
    def run(variant: str, repetition: int) -> Run:
        keras.utils.set_random_seed(repetition)
        model = build()
        timer = EpochTimer()
        with tempfile.TemporaryDirectory() as log_dir, SpectraClock() as clock:
            callbacks = variant_callbacks(variant, log_dir, x, y)
            hook_seconds = [time_epoch_end(callback, clock) for callback in callbacks]
            _, fit_seconds = bench.timed(model.fit, x, y, batch_size=args.batch_size, epochs=args.epochs,
                                         verbose=0, callbacks=callbacks + [timer])
        per_epoch = [sum(epoch) for epoch in zip(*hook_seconds)][1:]  # the first epoch is not timed
        spectra = [sum(epoch) for epoch in zip(*(clock.per_call[id(c)] for c in callbacks))][1:]
        return Run(statistics.median(timer.seconds[1:]), statistics.median(per_epoch) if per_epoch else 0.0,
                   fit_seconds, statistics.median(spectra) if spectra else 0.0)

    return bench.interleave(VARIANTS, args.repeats, run)


def variant_callbacks(variant: str, log_dir: str, x, y) -> list:
    if variant == "keras TensorBoard":
        return [keras.callbacks.TensorBoard(log_dir, histogram_freq=1)]
    if variant == "InitDiagnostics defaults":
        return [InitDiagnostics(log_dir, (x[:256], y[:256]))]
    if variant == "InitDiagnostics max":
        return [InitDiagnostics(log_dir, (x[:1024], y[:1024]), buckets=100)]
    if variant == "InitDiagnostics spectra":
        return [InitDiagnostics(log_dir, (x[:256], y[:256]), spectra=True)]
    return []


def time_epoch_end(callback, clock: "SpectraClock") -> list[float]:
    """Make `callback` record the seconds each of its on_epoch_end calls
    takes (and `clock` the seconds of the spectra within each)."""
    seconds, original = [], callback.on_epoch_end
    spectra = clock.per_call[id(callback)] = []

    def on_epoch_end(epoch, logs=None):
        start, spectra_before = time.perf_counter(), clock.total
        original(epoch, logs)
        seconds.append(time.perf_counter() - start)
        spectra.append(clock.total - spectra_before)

    callback.on_epoch_end = on_epoch_end
    return seconds


class SpectraClock:
    """While entered, adds up the seconds InitDiagnostics spends on the
    kernels' spectra (its calls of `kinit.callbacks.rows.spectra_row`)."""

    def __init__(self):
        self.total = 0.0
        self.per_call: dict[int, list[float]] = {}

    def __enter__(self):
        self._original = callback_module.spectra_row

        def timed(*args):
            start = time.perf_counter()
            try:
                return self._original(*args)
            finally:
                self.total += time.perf_counter() - start

        callback_module.spectra_row = timed
        return self

    def __exit__(self, *exc):
        callback_module.spectra_row = self._original


class EpochTimer(keras.callbacks.Callback):
    """Epoch wall time, including the on_epoch_end of callbacks listed before it."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def print_table(title: str, results: dict[str, list[Run]]) -> str:
    none = [run.epoch for run in results["none"]]
    keras_tb = [run.epoch for run in results["keras TensorBoard"]]
    keras_tb_hook = [run.hook for run in results["keras TensorBoard"]]
    none_fit = [run.fit for run in results["none"]]
    rows = []
    for variant, runs in results.items():
        epochs, hooks = [run.epoch for run in runs], [run.hook for run in runs]
        rows.append([
            variant, bench.spread(epochs, 3), bench.spread(bench.ratios(epochs, none), 3),
            bench.spread(bench.ratios(epochs, keras_tb), 3), bench.spread(hooks, 3),
            bench.spread(bench.ratios(hooks, none), 1, scale=100, suffix=" %"),
            bench.spread(bench.ratios(hooks, keras_tb_hook), 2),
            bench.spread([run.fit for run in runs]),
            bench.spread(bench.ratios([run.fit for run in runs], none_fit), 3),
        ])
    ours = [run.epoch for run in results["InitDiagnostics defaults"]]
    note = (f"{bench.verdict('InitDiagnostics defaults / none', bench.ratios(ours, none), GOAL)}; "
            f"{bench.verdict('InitDiagnostics defaults / keras TensorBoard', bench.ratios(ours, keras_tb), 1.0)}.")
    headers = ["variant", "epoch s", "epoch / none", "epoch / keras TensorBoard", "on_epoch_end s",
               "on_epoch_end / none epoch", "on_epoch_end / keras TensorBoard", "fit s", "fit / none"]
    return bench.print_table(title, headers, rows, note + "\n\n" + spectra_cost(results))


def spectra_cost(results: dict[str, list[Run]]) -> str:
    """The on_epoch_end seconds the spectra add to the defaults, and that
    time against Keras's TensorBoard's, per repetition."""
    off = [run.hook for run in results["InitDiagnostics defaults"]]
    on = [run.hook for run in results["InitDiagnostics spectra"]]
    keras_tb = [run.hook for run in results["keras TensorBoard"]]
    added = [with_spectra - without for with_spectra, without in zip(on, off)]
    computing = [run.spectra for run in results["InitDiagnostics spectra"]]
    return (f"Spectra: on_epoch_end {bench.spread(on, 3)} s with, {bench.spread(off, 3)} s without; "
            f"they add {bench.spread(added, 3)} s per log, "
            f"{bench.spread(bench.ratios(added, keras_tb), 2)}× Keras TensorBoard's on_epoch_end; "
            f"with spectra / keras TensorBoard: {bench.spread(bench.ratios(on, keras_tb), 2)}×. "
            f"Timed directly, computing them takes {bench.spread(computing, 4)} s per log, "
            f"{bench.spread(bench.ratios(computing, keras_tb), 2)}× Keras TensorBoard's on_epoch_end.")


def profile_one_log(build, x, y) -> None:
    """cProfile of the diagnostics a callback writes at the end of one epoch."""
    model = build()
    with tempfile.TemporaryDirectory() as log_dir:
        callback = InitDiagnostics(log_dir, (x[:256], y[:256]))
        model.fit(x[:2048], y[:2048], epochs=1, verbose=0, callbacks=[callback])
        callback.on_train_begin()  # reopens the event file; step 0 is not logged again
        callback.log(1)  # warm: traces for new tensor sizes happen once
        _, seconds = bench.timed(callback.log, 2)
        _, stats = bench.profile(callback.log, 3)
        callback.on_train_end()
    total = next(entry[3] for (file, _, name), entry in stats.stats.items()
                 if name == "log" and Path(file).parent.name == "callbacks")
    bench.print_table(f"Where one InitDiagnostics log goes ({seconds:.3f} s unprofiled, {total:.3f} s profiled)",
                      ["callbacks function", "ms", "share of the log"],
                      bench.profile_rows(stats, callback_stage, 1, total))


def callback_stage(file: str, name: str):
    """``module.function`` for the callbacks package's named functions (not its error guard)."""
    if Path(file).parent.name == "callbacks" and name != "_guard" and not name.startswith("<"):
        return f"{Path(file).stem}.{name}"
    return None


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


MODELS = {"mlp": ("MLP 784-256-128-10", mlp), "cnn": ("CNN Conv2D×3, 28×28", cnn)}


def training_data(data_dir=None) -> tuple[np.ndarray, np.ndarray, str]:
    """Training images (float32 in [0, 1]), labels and where they came from.

    Fashion-MNIST through the examples' loader (without Keras's download);
    random data of the same size when it is nowhere to be found and no
    `data_dir` was asked for.
    """
    data = bench.load_example("fashion_mnist_data")
    try:
        raw = data.load_fashion_mnist(data_dir, download=False)
    except data.DataNotFoundError:
        if data_dir is not None:
            raise
        rng = np.random.default_rng(0)
        x = rng.random((60000, *data.IMAGE_SHAPE), dtype=np.float32)
        return x, rng.integers(0, data.NUM_CLASSES, len(x)).astype("int32"), "synthetic data of Fashion-MNIST's size"
    x = (raw.x_train / np.float32(255)).astype("float32")
    return x, raw.y_train.astype("int32"), f"Fashion-MNIST from {raw.source}"


if __name__ == "__main__":
    main()
