"""What the benchmark scripts share: setup, interleaved repetitions, timing, tables.

It lives below ``benchmarks/`` rather than in it, so that ``make bench``
(which runs every ``benchmarks/*.py``) does not take it for a benchmark. A
script loads it by path from its own folder, which also puts the checkout
on ``sys.path`` so that ``kinit`` and ``callbacks`` import without
installing the package:

    sys.path.insert(0, str(Path(__file__).resolve().parent / "shared"))
    import bench  # noqa: E402

Every table follows one convention: a cell is the median over the
repetitions with the min–max in brackets, and a ratio is computed within
each repetition against the baseline measured in that same repetition
(then its median and min–max are shown), so that a slow moment of a shared
machine hits both sides of a ratio alike.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import io
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

Result = TypeVar("Result")


def parser(doc: str, repeats: int) -> argparse.ArgumentParser:
    """An argument parser with the two flags every benchmark takes.

    `--smoke` selects the script's smallest size and, unless `--repeats` is
    given, one repetition; see `parse`.
    """
    result = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--repeats", type=int, default=None,
                        help=f"repetitions, interleaved (default {repeats}; with --smoke 1)")
    result.add_argument("--smoke", action="store_true", help="the smallest size, for a quick test")
    result.set_defaults(default_repeats=repeats)
    return result


def parse(argument_parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None):
    args = argument_parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.smoke else args.default_repeats
    if args.repeats < 1:
        argument_parser.error(f"--repeats must be at least 1; received {args.repeats}")
    return args


def load_example(name: str) -> ModuleType:
    """The module ``examples/<name>.py``, imported from that folder as the examples import each other."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return importlib.import_module(name)


# --- what was measured on what ----------------------------------------------

def machine() -> str:
    """Cores, CPU model and RAM of this machine."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as stream:
            model = next(line.split(":", 1)[1].strip() for line in stream if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        ram = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / (1 << 30):.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        ram = ""
    return f"{os.cpu_count()} cores, {model}{ram}"


def versions() -> str:
    import keras

    names = {"Keras": "keras", "TensorFlow": "tensorflow", "NumPy": "numpy"}
    found = [f"Python {platform.python_version()}"]
    for label, distribution in names.items():
        for candidate in (distribution, f"{distribution}-cpu"):
            try:
                found.append(f"{label} {metadata.version(candidate)}")
                break
            except metadata.PackageNotFoundError:
                continue
    return f"backend {keras.backend.backend()}; " + ", ".join(found)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min)"


def header(title: str, repeats: int, details: str = "") -> str:
    """Print (and return) the title and the line saying when, where and how it was measured."""
    lines = [
        f"# {title}",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {machine()}; {versions()}.",
        f"Medians over {repeats} interleaved repetition(s), min–max in brackets; ratios are "
        "taken within each repetition against the baseline of that repetition."
        + (f" {details}" if details else ""),
        "",
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


# --- measuring ----------------------------------------------------------------

def interleave(variants: Sequence[str], repeats: int,
               run: Callable[[str, int], Result]) -> Dict[str, List[Result]]:
    """``{variant: [run(variant, repetition) for each repetition]}``, interleaved.

    Every repetition runs every variant once; the order rotates from one
    repetition to the next, so neither drift in the machine's load nor
    running first or last favours a variant.
    """
    results: Dict[str, List[Result]] = {variant: [] for variant in variants}
    for repetition in range(repeats):
        shift = repetition % len(variants)
        for variant in list(variants[shift:]) + list(variants[:shift]):
            results[variant].append(run(variant, repetition))
    return results


def timed(function: Callable[..., Result], *args, **kwargs) -> Tuple[Result, float]:
    """``(function(*args, **kwargs), seconds it took)``."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def run_process(command: Sequence[str]) -> Tuple[str, float]:
    """Run `command`; return its standard output and the seconds it took.

    Raises:
        RuntimeError: the command failed; the message ends with its stderr.
    """
    process, seconds = timed(subprocess.run, list(command), capture_output=True, text=True)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{process.stderr[-3000:]}")
    return process.stdout, seconds


def profile(function: Callable[..., Result], *args, top: Optional[int] = 15,
            **kwargs) -> Tuple[Result, pstats.Stats]:
    """Run `function` under cProfile; print the `top` entries by own time (None: print nothing)."""
    profiler = cProfile.Profile()
    result = profiler.runcall(function, *args, **kwargs)
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    if top is not None:
        stats.sort_stats("tottime").print_stats(top)
        print(stream.getvalue(), flush=True)
    return result, stats


def profile_rows(stats: pstats.Stats, label: Callable[[str, str], Optional[str]], calls: int,
                 total: float, top: int = 12) -> List[List[str]]:
    """``[label, ms per call, share of total]`` of the `top` profiled functions by cumulative time.

    `label(file, function name)` names the functions to show and returns None
    for the others; `total` is the seconds the shares are of, over `calls` calls.
    """
    named = [(label(file, name), cumulative)
             for (file, _, name), (_, _, _, cumulative, _) in stats.stats.items()]
    named = sorted(((name, seconds) for name, seconds in named if name), key=lambda row: -row[1])[:top]
    return [[name, f"{1e3 * seconds / calls:.2f}", f"{seconds / total:.0%}"] for name, seconds in named]


# --- reporting ------------------------------------------------------------------

def ratios(values: Sequence[float], baseline: Sequence[float]) -> List[float]:
    """Per-repetition ratios ``values[i] / baseline[i]``."""
    return [value / base for value, base in zip(values, baseline)]


def spread(values: Sequence[float], digits: int = 2, scale: float = 1.0, suffix: str = "") -> str:
    """``median (min–max)`` of `values` × `scale`; just the median when all are equal."""
    values = [value * scale for value in values]
    middle = f"{statistics.median(values):.{digits}f}{suffix}"
    if min(values) == max(values):
        return middle
    return f"{middle} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def verdict(label: str, values: Sequence[float], limit: float, unit: str = "×", digits: int = 2) -> str:
    """``label: median (goal ≤ limit: met|missed)``; the goal is judged on the median."""
    value = statistics.median(values)
    outcome = "met" if value <= limit else "missed"
    return f"{label}: {value:.{digits}f}{unit} (goal ≤ {limit:.{digits}f}{unit}: {outcome})"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
                note: str = "") -> str:
    """Print (and return) a titled Markdown table, the load average now, and `note`."""
    text = f"## {title}\n\n{markdown_table(headers, rows)}\n\n_{load_average()} at the end._\n"
    if note:
        text += f"\n{note}\n"
    print(text, flush=True)
    return text
