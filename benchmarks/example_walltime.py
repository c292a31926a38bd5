"""Wall time of the Fashion-MNIST comparison example, against a plain fit.

For each mode it runs examples/fashion_mnist_comparison.py as a user does
(a fresh process: TensorBoard logging, kinit's diagnostics, table and
plots) and, interleaved in the same repetition, the obvious baseline: a
plain `model.fit` of the same network on the same data and epochs, without
callbacks, in this process. The table shows the example process's total
time, its mean time per scheme (as the example reports it: building,
model-level initialization, training with logging), the plain fit, and
their ratio, which is what logging and diagnostics cost per scheme.

Modes:
    quick  3000 examples, 2 epochs, all 10 schemes; ~30 s a repetition (default)
    full   60000 examples, 10 epochs, all 10 schemes; ~8 min a repetition, so
           measured once: --modes full quick --repeats 1

Usage:
    python benchmarks/example_walltime.py                     # quick, 3 repetitions, ~2 min
    python benchmarks/example_walltime.py --modes full quick --repeats 1
    python benchmarks/example_walltime.py --smoke             # 2 schemes, 1 epoch, synthetic data
"""

from __future__ import annotations

import csv
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "shared"))
import bench  # noqa: E402

SCRIPT = bench.EXAMPLES / "fashion_mnist_comparison.py"
MODES = {"quick": ["--quick"], "full": []}
SMOKE = ["--quick", "--train-size", "256", "--test-size", "128", "--epochs", "1",
         "--schemes", "zeros", "keras_default"]
EXAMPLE, PLAIN = "example", "plain fit"


def run_example(flags: list[str], output: Path) -> dict:
    """Total seconds of one example process, and its schemes' times."""
    _, total = bench.run_process([sys.executable, str(SCRIPT), *flags, "--quiet", "--output-dir", str(output)])
    with open(output / "results.csv", newline="") as stream:
        schemes = [float(row["wall_time_s"]) for row in csv.DictReader(stream)]
    return {"total": total, "per_scheme": statistics.mean(schemes), "schemes": len(schemes)}


def plain_fit(comparison, args, data) -> float:
    """Seconds to build and fit the example's network with no callbacks at all."""
    import keras

    keras.utils.set_random_seed(args.seed)
    default = next(s for s in comparison.scheme_registry.COMPARISON if s.name == "keras_default")

    def build_and_fit():
        model = comparison.build_model(default, args)
        model.fit(comparison.training_data(data, args), epochs=args.epochs,
                  validation_data=(data.x_val, data.y_val), shuffle=False, verbose=0)

    return bench.timed(build_and_fit)[1]


def main(argv=None) -> list[str]:
    parser = bench.parser(__doc__, repeats=3)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=["quick"],
                        help="quick (default) and/or full; full takes ~8 min a repetition")
    parser.add_argument("--data-dir", type=Path, help="passed to the example")
    args = bench.parse(parser, argv)
    comparison = bench.load_example("fashion_mnist_comparison")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.smoke:
            data_dir = bench.load_example("fashion_mnist_data").write_synthetic(
                scratch / "data", n_train=256, n_test=128)
            modes = {"smoke": SMOKE + ["--data-dir", str(data_dir)]}
        else:
            extra = ["--data-dir", str(args.data_dir)] if args.data_dir else []
            modes = {mode: MODES[mode] + extra for mode in args.modes}
        bench.header("Example wall time", args.repeats, "The example runs in a fresh process; the plain fit "
                                                        "in this one, on data already loaded.")
        rows = []
        for mode, flags in modes.items():
            example_args = comparison.parse_args(flags)
            data = comparison.prepare_data(example_args)

            def run(variant: str, repetition: int):
                if variant == EXAMPLE:
                    return run_example(flags, scratch / f"{mode}-{repetition}")
                return plain_fit(comparison, example_args, data)

            results = bench.interleave((EXAMPLE, PLAIN), args.repeats, run)
            per_scheme = [run["per_scheme"] for run in results[EXAMPLE]]
            rows.append([mode, results[EXAMPLE][0]["schemes"], example_args.epochs, len(data.x_train),
                         bench.spread([run["total"] for run in results[EXAMPLE]], 1),
                         bench.spread(per_scheme, 2), bench.spread(results[PLAIN], 2),
                         bench.spread(bench.ratios(per_scheme, results[PLAIN]))])
    headers = ["mode", "schemes", "epochs", "training examples", "process total s", "per scheme s",
               "plain fit s", "per scheme / plain fit"]
    return [bench.print_table("The comparison example against a plain fit per scheme", headers, rows)]


if __name__ == "__main__":
    main()
