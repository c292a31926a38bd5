"""Peak memory to log one histogram: `tf.summary.histogram` versus kinit's writer.

Each measurement runs in its own process: it makes a float32 tensor of the
given size, warms both paths up on a tiny tensor (imports, tracing), resets
the kernel's peak-RSS mark (``/proc/self/clear_refs``), logs one 30-bucket
histogram of the big tensor and reports the peak resident memory above what
the process held just before. Prints a Markdown table: medians over
``--repeats`` with min–max.

`tf.summary.histogram` builds an elements × buckets float64 one-hot matrix
(24 GB for 10⁸ elements and 30 buckets), so it is only run where that
matrix fits under ``--baseline-limit-gib``; above that the table shows the
matrix size it would need instead.

Usage:
    python benchmarks/histogram_memory.py                 # 10^6, 10^7, 10^8
    python benchmarks/histogram_memory.py --elements 100000 --repeats 1   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("tf.summary.histogram", "kinit writer")
MIB = 1 << 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, nargs="+", default=[10**6, 10**7, 10**8])
    parser.add_argument("--buckets", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-limit-gib", type=float, default=4.0,
                        help="skip tf.summary.histogram when its one-hot matrix exceeds this")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.elements[0], args.buckets)))
        return

    print(f"# Histogram memory ({args.buckets} buckets, float32, medians of {args.repeats})\n")
    print("| elements | variant | peak extra MiB | min–max | seconds |")
    print("|---:|---|---:|---|---:|")
    for elements in args.elements:
        for variant in VARIANTS:
            one_hot_gib = elements * args.buckets * 8 / (1 << 30)
            if variant == VARIANTS[0] and one_hot_gib > args.baseline_limit_gib:
                print(f"| {elements:.0e} | {variant} | not run: its one-hot matrix alone "
                      f"is {one_hot_gib:.1f} GiB | | |")
                continue
            runs = [run_child(variant, elements, args.buckets) for _ in range(args.repeats)]
            peaks = [r["peak_bytes"] / MIB for r in runs]
            seconds = statistics.median(r["seconds"] for r in runs)
            print(f"| {elements:.0e} | {variant} | {statistics.median(peaks):.1f} | "
                  f"{min(peaks):.1f}–{max(peaks):.1f} | {seconds:.2f} |", flush=True)
    print("\nGoal: kinit writer < 64 MiB extra at 1e+08 elements.")


def run_child(variant: str, elements: int, buckets: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--elements", str(elements),
         "--buckets", str(buckets)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{variant} at {elements} elements failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(variant: str, elements: int, buckets: int) -> dict:
    import tensorflow as tf

    from callbacks.writer import SummaryWriter, histogram_value

    log_dir = tempfile.mkdtemp()
    if variant == "kinit writer":
        writer = SummaryWriter(log_dir)

        def log(values, step):
            writer.write(step, [histogram_value("values", values, buckets)])
    else:
        file_writer = tf.summary.create_file_writer(log_dir)

        def log(values, step):
            with file_writer.as_default():
                tf.summary.histogram("values", values, step=step, buckets=buckets)

    log(tf.random.normal([1000]), step=0)  # warm-up: imports, tracing
    values = tf.random.normal([elements])
    before = _resident_bytes()
    _reset_peak()
    start = time.perf_counter()
    log(values, step=1)
    seconds = time.perf_counter() - start
    return {"peak_bytes": max(0, _peak_bytes() - before), "seconds": seconds}


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current RSS


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _resident_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def _peak_bytes() -> int:
    return _status_kib("VmHWM") * 1024


if __name__ == "__main__":
    main()
