"""Wall time of the Fashion-MNIST comparison example, full and quick.

For each mode it runs the example as a user does (a fresh process, logging,
diagnostics, table and plots) and, in the same repetition, the obvious
baseline: a plain `model.fit` of the same network on the same data and
epochs with no callbacks. It prints a Markdown table with medians over
`--repeats` (min–max): the process's total time, the time per scheme as the
example reports it, the baseline per scheme and their ratio, which is what
logging and diagnostics cost.

The full mode trains every scheme for 10 epochs on all 60000 examples and
takes minutes per repetition; `--modes quick` skips it. `--smoke` runs a tiny
quick mode on synthetic data, for tests.

Usage:
    python benchmarks/example_walltime.py                 # full and quick, 1 repetition
    python benchmarks/example_walltime.py --modes quick --repeats 3
    python benchmarks/example_walltime.py --smoke
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "fashion_mnist_comparison.py"
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODES = {"full": [], "quick": ["--quick"]}
SMOKE = ["--quick", "--train-size", "256", "--test-size", "128", "--epochs", "1",
         "--schemes", "zeros", "keras_default"]


def run_example(flags: list[str], output: Path) -> tuple[float, list[float]]:
    """Total seconds of one example process and its per-scheme times."""
    start = time.perf_counter()
    subprocess.run([sys.executable, str(SCRIPT), *flags, "--quiet", "--output-dir", str(output)],
                   check=True, stdout=subprocess.DEVNULL)
    total = time.perf_counter() - start
    with open(output / "results.csv", newline="") as stream:
        return total, [float(row["wall_time_s"]) for row in csv.DictReader(stream)]


def plain_fit(flags: list[str]) -> float:
    """Seconds to build and fit the example's network with no callbacks at all."""
    import keras

    import fashion_mnist_comparison as comparison
    import schemes

    args = comparison.parse_args(flags)
    data = comparison.prepare_data(args)
    keras.utils.set_random_seed(args.seed)
    default = next(s for s in schemes.COMPARISON if s.name == "keras_default")
    start = time.perf_counter()
    model = comparison.build_model(default, args)
    model.fit(comparison.training_data(data, args), epochs=args.epochs,
              validation_data=(data.x_val, data.y_val), shuffle=False, verbose=0)
    return time.perf_counter() - start


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=["full", "quick"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, help="passed to the example")
    parser.add_argument("--smoke", action="store_true", help="one tiny quick run on synthetic data")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.smoke:
            from fashion_mnist_data import write_synthetic

            data_dir = write_synthetic(scratch / "data", n_train=256, n_test=128)
            modes, repeats = {"smoke": SMOKE + ["--data-dir", str(data_dir)]}, 1
        else:
            extra = ["--data-dir", str(args.data_dir)] if args.data_dir else []
            modes, repeats = {m: MODES[m] + extra for m in args.modes}, args.repeats

        lines = [
            "| mode | schemes | process total (s) | per scheme (s) | plain fit per scheme (s) "
            "| per scheme / plain fit |",
            "|---|---|---|---|---|---|",
        ]
        for mode, flags in modes.items():
            totals, per_scheme, plain = [], [], []
            for repeat in range(repeats):
                total, times = run_example(flags, scratch / f"{mode}-{repeat}")
                totals.append(total)
                per_scheme.append(statistics.mean(times))
                plain.append(plain_fit(flags))
            ratios = [p / b for p, b in zip(per_scheme, plain)]
            lines.append(f"| {mode} | {len(times)} | {summary(totals)} | {summary(per_scheme)} "
                         f"| {summary(plain)} | {statistics.median(ratios):.2f}× "
                         f"({min(ratios):.2f}–{max(ratios):.2f}) |")
    table = "\n".join(lines)
    print(f"\nExample wall time, medians over {repeats} repetition(s) (min–max):\n")
    print(table)
    return table


if __name__ == "__main__":
    main()
