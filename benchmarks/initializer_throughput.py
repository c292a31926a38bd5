"""Time to fill a kernel: kinit's initializers against Keras's built-ins.

For each shape (1024×1024, 4096×4096, 3×3×256×256), each scheme that both
libraries offer is timed side by side: one call of the kinit initializer and
one of the Keras initializer of the same scheme, alternating, ``--repeats``
times after one warm-up call each. Prints Markdown tables of the median time
of each and of the kinit / Keras ratio (computed within each repetition),
with min–max over the repetitions; then the absolute times of the structured
convolution schemes, which Keras does not have; with ``--profile``, where
kinit's Orthogonal spends its time (draw, QR, sign correction, scale and cast)
next to Keras's Orthogonal.

Usage:
    python benchmarks/initializer_throughput.py [--repeats 5]
    python benchmarks/initializer_throughput.py --smoke       # tiny shapes, 2 repeats
    python benchmarks/initializer_throughput.py --profile     # Orthogonal's stages
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

import kinit  # noqa: E402

SHAPES = [(1024, 1024), (4096, 4096), (3, 3, 256, 256)]
SMOKE_SHAPES = [(64, 64), (3, 3, 8, 8)]

# scheme: (kinit initializer, Keras initializer); the same formula on both sides.
PAIRS = {
    "HeNormal": (lambda: kinit.HeNormal(seed=1), lambda: keras.initializers.HeNormal(seed=1)),
    "GlorotUniform": (lambda: kinit.GlorotUniform(seed=1), lambda: keras.initializers.GlorotUniform(seed=1)),
    "Orthogonal": (lambda: kinit.Orthogonal(seed=1), lambda: keras.initializers.Orthogonal(seed=1)),
    "TruncatedNormal": (
        lambda: kinit.TruncatedNormal(stddev=0.05, seed=1),
        lambda: keras.initializers.TruncatedNormal(stddev=0.05, seed=1),
    ),
}
CONV_ONLY = {
    "ConvolutionOrthogonal": lambda: kinit.ConvolutionOrthogonal(seed=1),
    "DeltaOrthogonal": lambda: kinit.DeltaOrthogonal(seed=1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, 2 repeats")
    parser.add_argument("--profile", action="store_true", help="time the stages of Orthogonal")
    args = parser.parse_args()
    shapes = SMOKE_SHAPES if args.smoke else SHAPES
    repeats = 2 if args.smoke else args.repeats
    print(f"# Initializer throughput (backend {keras.backend.backend()}, float32, "
          f"medians of {repeats} calls with min–max; {time.strftime('%Y-%m-%d')})\n")
    if args.profile:
        print_orthogonal_stages(shapes, repeats)
        return
    print_comparison(shapes, repeats)
    print_conv_schemes([s for s in shapes if len(s) == 4], repeats)


def filled(initializer, shape):
    """Call `initializer` and wait until the values exist (JAX runs asynchronously)."""
    values = initializer(shape, dtype="float32")
    if hasattr(values, "block_until_ready"):
        values.block_until_ready()
    return values


def seconds(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def compare(make_kinit, make_keras, shape, repeats: int):
    """Per-repetition (kinit seconds, Keras seconds), after one warm-up call each."""
    ours, theirs = make_kinit(), make_keras()
    filled(ours, shape), filled(theirs, shape)
    times = []
    for repeat in range(repeats):
        # Alternate which goes first, so that drift in the machine's load hits both alike.
        if repeat % 2:
            theirs_s = seconds(lambda: filled(theirs, shape))
            ours_s = seconds(lambda: filled(ours, shape))
        else:
            ours_s = seconds(lambda: filled(ours, shape))
            theirs_s = seconds(lambda: filled(theirs, shape))
        times.append((ours_s, theirs_s))
    return times


def spread(values, scale: float = 1.0, digits: int = 2) -> str:
    values = [v * scale for v in values]
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def print_comparison(shapes, repeats: int) -> None:
    print("## kinit vs Keras, same scheme\n")
    print("| shape | scheme | kinit ms | Keras ms | kinit / Keras |")
    print("| --- | --- | --- | --- | --- |")
    for shape in shapes:
        for scheme, (make_kinit, make_keras) in PAIRS.items():
            times = compare(make_kinit, make_keras, shape, repeats)
            ours, theirs = [t[0] for t in times], [t[1] for t in times]
            ratios = [a / b for a, b in times]
            print(f"| {'×'.join(map(str, shape))} | {scheme} | {spread(ours, 1e3, 1)} | "
                  f"{spread(theirs, 1e3, 1)} | {spread(ratios)} |")
    print()


def print_conv_schemes(shapes, repeats: int) -> None:
    print("## Structured convolution schemes (no Keras equivalent)\n")
    print("| shape | scheme | kinit ms |")
    print("| --- | --- | --- |")
    for shape in shapes:
        for scheme, make in CONV_ONLY.items():
            initializer = make()
            filled(initializer, shape)
            times = [seconds(lambda: filled(initializer, shape)) for _ in range(repeats)]
            print(f"| {'×'.join(map(str, shape))} | {scheme} | {spread(times, 1e3, 1)} |")
    print()


def print_orthogonal_stages(shapes, repeats: int) -> None:
    """cProfile of kinit's Orthogonal: time per call in each Keras op it runs."""
    print("## Where kinit's Orthogonal spends its time (ms per call)\n")
    for shape in shapes:
        ours, theirs = kinit.Orthogonal(seed=1), keras.initializers.Orthogonal(seed=1)
        filled(ours, shape), filled(theirs, shape)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeats):
            filled(ours, shape)
        profiler.disable()
        keras_total = statistics.median(seconds(lambda: filled(theirs, shape)) for _ in range(repeats))
        stats = pstats.Stats(profiler).stats
        total = sum(entry[3] for key, entry in stats.items() if key[2] == "__call__" and "kinit" in key[0])
        print(f"### {'×'.join(map(str, shape))}: kinit {1e3 * total / repeats:.1f} ms, "
              f"Keras {1e3 * keras_total:.1f} ms\n")
        print("| Keras op | ms per call | share of kinit's time |")
        print("| --- | --- | --- |")
        rows = [
            (f"{Path(file).parent.name}.{name}", cumulative)
            for (file, _, name), (_, _, _, cumulative, _) in stats.items()
            if f"{os.sep}keras{os.sep}src{os.sep}" in file and Path(file).parent.name in ("ops", "random")
            and not name.startswith("_")
        ]
        for name, cumulative in sorted(rows, key=lambda row: -row[1]):
            print(f"| {name} | {1e3 * cumulative / repeats:.2f} | {cumulative / total:.0%} |")
        print()


if __name__ == "__main__":
    main()
