"""Time to fill a kernel: kinit's initializers against Keras's built-ins.

For each shape (1024×1024, 4096×4096, 3×3×256×256) and each scheme that both
libraries offer (HeNormal, GlorotUniform, Orthogonal, TruncatedNormal), one
call of the kinit initializer and one of the Keras initializer of the same
scheme are timed in every repetition, interleaved, after one warm-up call
each; the table shows both times and kinit / Keras. Then the structured
convolution schemes Keras does not have (ConvolutionOrthogonal,
DeltaOrthogonal) on the 4-D shape, timed the same way next to Keras's
Orthogonal of that shape (which fills the kernel as one reshaped
2304×256 matrix, without the convolution structure). With ``--profile``,
where kinit's Orthogonal spends its time, op by op, next to Keras's.

Goal: kinit / Keras at most 1.1 for every scheme and shape (same work).

Usage:
    python benchmarks/initializer_throughput.py               # 5 repetitions, ~1.5 min
    python benchmarks/initializer_throughput.py --repeats 9
    python benchmarks/initializer_throughput.py --smoke       # 64×64 and 3×3×8×8, 1 repetition
    python benchmarks/initializer_throughput.py --profile     # Orthogonal's stages
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "shared"))
import bench  # noqa: E402

import keras  # noqa: E402

import kinit  # noqa: E402

SHAPES = [(1024, 1024), (4096, 4096), (3, 3, 256, 256)]
SMOKE_SHAPES = [(64, 64), (3, 3, 8, 8)]
GOAL = 1.1

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
KERAS_ORTHOGONAL = "Keras Orthogonal"
CONV_ONLY = {
    KERAS_ORTHOGONAL: lambda: keras.initializers.Orthogonal(seed=1),
    "ConvolutionOrthogonal": lambda: kinit.ConvolutionOrthogonal(seed=1),
    "DeltaOrthogonal": lambda: kinit.DeltaOrthogonal(seed=1),
}


def main(argv=None) -> list[str]:
    parser = bench.parser(__doc__, repeats=5)
    parser.add_argument("--profile", action="store_true", help="time the stages of Orthogonal")
    args = bench.parse(parser, argv)
    shapes = SMOKE_SHAPES if args.smoke else SHAPES
    bench.header("Initializer throughput", args.repeats, "float32; one call per initializer and repetition.")
    if args.profile:
        return [print_orthogonal_stages(shapes, args.repeats)]
    return [print_comparison(shapes, args.repeats),
            print_conv_schemes([shape for shape in shapes if len(shape) == 4], args.repeats)]


def filled(initializer, shape):
    """Call `initializer` and wait until the values exist (JAX runs asynchronously)."""
    values = initializer(shape, dtype="float32")
    if hasattr(values, "block_until_ready"):
        values.block_until_ready()
    return values


def call_times(makers: dict, shape, repeats: int) -> dict[str, list[float]]:
    """Seconds of one call of each initializer per repetition, interleaved, after a warm-up call each."""
    initializers = {name: make() for name, make in makers.items()}
    for initializer in initializers.values():
        filled(initializer, shape)
    return bench.interleave(list(initializers), repeats,
                            lambda name, _: bench.timed(filled, initializers[name], shape)[1])


def label(shape) -> str:
    return "×".join(map(str, shape))


def print_comparison(shapes, repeats: int) -> str:
    rows, by_median = [], []
    for shape in shapes:
        for scheme, (make_kinit, make_keras) in PAIRS.items():
            times = call_times({"kinit": make_kinit, "Keras": make_keras}, shape, repeats)
            ratios = bench.ratios(times["kinit"], times["Keras"])
            by_median.append((statistics.median(ratios), f"{scheme} {label(shape)}", ratios))
            rows.append([label(shape), scheme, bench.spread(times["kinit"], 1, 1e3),
                         bench.spread(times["Keras"], 1, 1e3), bench.spread(ratios)])
    _, worst, ratios = max(by_median, key=lambda entry: entry[0])
    return bench.print_table("kinit against Keras, same scheme", ["shape", "scheme", "kinit ms", "Keras ms",
                                                                  "kinit / Keras"], rows,
                             bench.verdict(f"Largest kinit / Keras ({worst})", ratios, GOAL) + ".")


def print_conv_schemes(shapes, repeats: int) -> str:
    rows = []
    for shape in shapes:
        times = call_times(CONV_ONLY, shape, repeats)
        for scheme, seconds in times.items():
            rows.append([label(shape), scheme, bench.spread(seconds, 1, 1e3),
                         bench.spread(bench.ratios(seconds, times[KERAS_ORTHOGONAL]))])
    return bench.print_table("Structured convolution schemes (no Keras equivalent)",
                             ["shape", "scheme", "ms", f"/ {KERAS_ORTHOGONAL}"], rows)


def keras_op(file: str, name: str):
    """``ops.qr`` for a public function of keras.ops or keras.random; None for anything else."""
    where = Path(file).parts[-4:-1]
    if where in (("keras", "src", "ops"), ("keras", "src", "random")) and not name.startswith("_"):
        return f"{where[-1]}.{name}"
    return None


def print_orthogonal_stages(shapes, repeats: int) -> str:
    """cProfile of kinit's Orthogonal: time per call in each Keras op it runs."""
    text = ""
    for shape in shapes:
        ours = kinit.Orthogonal(seed=1)
        filled(ours, shape)  # warm-up
        _, stats = bench.profile(lambda: [filled(ours, shape) for _ in range(repeats)], top=None)
        keras_seconds = call_times({"Keras": lambda: keras.initializers.Orthogonal(seed=1)}, shape, repeats)["Keras"]
        keras_ms = 1e3 * statistics.median(keras_seconds)
        total = sum(entry[3] for key, entry in stats.stats.items() if key[2] == "__call__" and "kinit" in key[0])
        text += bench.print_table(
            f"Where kinit's Orthogonal spends its time, {label(shape)}: kinit {1e3 * total / repeats:.1f} ms "
            f"per call, Keras {keras_ms:.1f} ms",
            ["Keras op", "ms per call", "share of kinit's time"],
            bench.profile_rows(stats, keras_op, repeats, total))
    return text


if __name__ == "__main__":
    main()
