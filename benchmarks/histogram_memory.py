"""Peak memory to log one histogram: `tf.summary.histogram` versus kinit's writer.

Each measurement runs in a process of its own: it makes a float32 tensor of
the given size, warms both paths up on a tiny tensor (imports, tracing),
resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), logs one
30-bucket histogram of the big tensor and reports the peak resident memory
above what the process held just before, and the seconds the log took. The
two variants' processes alternate within each repetition; ratios are kinit
writer / ``tf.summary.histogram``.

`tf.summary.histogram` builds an elements × buckets float64 one-hot matrix
(22 GiB for 10⁸ elements and 30 buckets), so it is only run where that
matrix fits under ``--baseline-limit-gib``; above that the table shows the
size it would need instead.

Goal: kinit writer's extra memory under 64 MiB at 10⁸ elements.

Usage:
    python benchmarks/histogram_memory.py                   # 10^6, 10^7, 10^8; 3 repetitions, ~2 min
    python benchmarks/histogram_memory.py --elements 100000000 --repeats 5
    python benchmarks/histogram_memory.py --smoke           # 2·10^4 elements, 1 repetition
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "shared"))
import bench  # noqa: E402

BASELINE, OURS = "tf.summary.histogram", "kinit writer"
SMOKE_ELEMENTS = 20000
GOAL_MIB = 64.0
MIB = 1 << 20


def main(argv=None) -> list[str]:
    parser = bench.parser(__doc__, repeats=3)
    parser.add_argument("--elements", type=int, nargs="+", default=[10**6, 10**7, 10**8])
    parser.add_argument("--buckets", type=int, default=30)
    parser.add_argument("--baseline-limit-gib", type=float, default=4.0,
                        help=f"skip {BASELINE} when its one-hot matrix exceeds this (default 4)")
    parser.add_argument("--child", choices=(BASELINE, OURS), help=argparse.SUPPRESS)
    args = bench.parse(parser, argv)
    elements = [SMOKE_ELEMENTS] if args.smoke else args.elements
    if args.child:
        print(json.dumps(measure(args.child, elements[0], args.buckets)))
        return []
    bench.header("Histogram memory", args.repeats,
                 f"{args.buckets} buckets, float32; one process per measurement.")
    rows, ours_peaks = [], {}
    for count in elements:
        one_hot_gib = count * args.buckets * 8 / (1 << 30)
        variants = (BASELINE, OURS) if one_hot_gib <= args.baseline_limit_gib else (OURS,)
        results = bench.interleave(variants, args.repeats, lambda variant, _: run_child(variant, count, args.buckets))
        peaks = {variant: [run["peak_bytes"] / MIB for run in runs] for variant, runs in results.items()}
        seconds = {variant: [run["seconds"] for run in runs] for variant, runs in results.items()}
        versus = BASELINE in results
        if not versus:
            rows.append([f"{count:.0e}", BASELINE, f"not run: its one-hot matrix alone is {one_hot_gib:.1f} GiB",
                         "", "", ""])
        for variant in variants:
            rows.append([
                f"{count:.0e}", variant, bench.spread(peaks[variant], 1),
                bench.spread(bench.ratios(peaks[variant], peaks[BASELINE]), 3) if versus else "",
                bench.spread(seconds[variant], 3),
                bench.spread(bench.ratios(seconds[variant], seconds[BASELINE]), 3) if versus else "",
            ])
        ours_peaks[count] = peaks[OURS]
    largest = max(elements)
    note = bench.verdict(f"{OURS} at {largest:.0e} elements", ours_peaks[largest], GOAL_MIB, " MiB", 1) + "."
    headers = ["elements", "variant", "peak extra MiB", f"/ {BASELINE}", "seconds", f"/ {BASELINE}"]
    return [bench.print_table("Peak extra memory of one histogram", headers, rows, note)]


def run_child(variant: str, elements: int, buckets: int) -> dict:
    output, _ = bench.run_process([sys.executable, __file__, "--child", variant, "--elements", str(elements),
                                   "--buckets", str(buckets)])
    return json.loads(output.strip().splitlines()[-1])


def measure(variant: str, elements: int, buckets: int) -> dict:
    import tensorflow as tf

    from kinit.callbacks.writer import SummaryWriter, histogram_value

    log_dir = tempfile.mkdtemp()
    if variant == OURS:
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
    before = _status_bytes("VmRSS")
    _reset_peak()
    _, seconds = bench.timed(log, values, step=1)
    return {"peak_bytes": max(0, _status_bytes("VmHWM") - before), "seconds": seconds}


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current RSS


def _status_bytes(field: str) -> int:
    """`field` of /proc/self/status (VmRSS: resident now, VmHWM: peak resident) in bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


if __name__ == "__main__":
    main()
