"""Every benchmark script runs at its smallest size and its tables say what they should.

The scripts are loaded by path and their `main` runs in this process (a fresh
TensorFlow process costs seconds); timings are never asserted, only what the
tables must hold whatever the machine's speed.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = ("callback_overhead", "histogram_memory", "initializer_throughput", "lsuv", "example_walltime")


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def rows(table: str) -> list[list[str]]:
    """The body rows of the Markdown table in `table`, as lists of cells."""
    lines = [line for line in table.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def median(cell: str) -> float:
    """The median of a ``median (min–max)`` cell."""
    return float(cell.split()[0])


def test_make_bench_runs_exactly_the_scripts_tested_here():
    # `make bench` runs benchmarks/*.py: the shared module must not be among them.
    assert sorted(path.stem for path in BENCHMARKS.glob("*.py")) == sorted(SCRIPTS)


def check_overhead_tables(tables):
    for table in tables:
        by_variant = {row[0]: row for row in rows(table)}
        assert list(by_variant) == ["none", "keras TensorBoard", "InitDiagnostics defaults", "InitDiagnostics max",
                                    "InitDiagnostics spectra"]
        none_epoch = median(by_variant["none"][1])
        for variant, row in by_variant.items():
            # One repetition: the ratio is the two epoch times of this table, up to their
            # rounding to 3 decimals (±0.0005 s each, a large share of a smoke epoch) and its own.
            epoch = median(row[1])
            ratio = epoch / none_epoch
            rounding = ratio * (5e-4 / epoch + 5e-4 / none_epoch) + 5e-4
            assert median(row[2]) == pytest.approx(ratio, abs=rounding * 1.01)
        assert median(by_variant["none"][4]) == 0  # no callback, no on_epoch_end time
        assert median(by_variant["InitDiagnostics defaults"][4]) > 0
        assert median(by_variant["InitDiagnostics spectra"][4]) > 0
        assert by_variant["keras TensorBoard"][6] == "1.00"  # on_epoch_end against Keras's, same repetition
        assert re.search(r"InitDiagnostics defaults / none: [\d.]+× \(goal ≤ 1\.10×: (met|missed)\)", table)
        # The spectra's cost: on_epoch_end with and without them, the difference, and against Keras's.
        spectra = re.search(r"Spectra: on_epoch_end ([\d.]+) s with, ([\d.]+) s without; they add (-?[\d.]+) s "
                            r"per log, (-?[\d.]+)× Keras TensorBoard's on_epoch_end", table)
        assert spectra and spectra.group(1) == by_variant["InitDiagnostics spectra"][4]
        assert spectra.group(2) == by_variant["InitDiagnostics defaults"][4]
        with_spectra, without, added = (float(spectra.group(i)) for i in (1, 2, 3))
        assert added == pytest.approx(with_spectra - without, abs=1.5e-3)  # each rounded to 3 decimals
        computing = re.search(r"Timed directly, computing them takes ([\d.]+) s per log", table)
        assert computing and 0 < float(computing.group(1)) <= with_spectra + 5e-4  # a part of on_epoch_end


def test_callback_overhead_times_every_variant_against_no_callback(capsys):
    tables = load_benchmark("callback_overhead").main(["--smoke", "--backends", "tensorflow"])
    assert len(tables) == 2 and tables[0] in capsys.readouterr().out  # MLP and CNN
    assert all("backend tensorflow" in table.splitlines()[0] for table in tables)
    check_overhead_tables(tables)


def test_callback_overhead_measures_jax_and_pytorch_each_in_its_own_process(capsys):
    tables = load_benchmark("callback_overhead").main(["--smoke", "--backends", "jax", "torch", "--models", "cnn"])
    assert [table.splitlines()[0].split(", ")[-1] for table in tables] == ["backend jax", "backend torch"]
    out = capsys.readouterr().out
    assert all(table in out for table in tables)
    check_overhead_tables(tables)


def test_histogram_memory_sees_the_one_hot_matrix_that_kinit_avoids(capsys):
    module = load_benchmark("histogram_memory")
    (table,) = module.main(["--smoke"])
    assert table in capsys.readouterr().out
    peaks = {row[1]: median(row[2]) for row in rows(table)}
    # tf.summary.histogram allocates an elements × buckets float64 one-hot matrix; the
    # measurement must see at least that much, and kinit's writer must stay below it.
    one_hot_mib = module.SMOKE_ELEMENTS * 30 * 8 / module.MIB
    assert peaks["tf.summary.histogram"] >= one_hot_mib > peaks["kinit writer"]


def test_initializer_throughput_pairs_every_scheme_and_profiles_orthogonal(capsys):
    module = load_benchmark("initializer_throughput")
    comparison, conv = module.main(["--smoke", "--repeats", "2"])
    pairs = {(row[0], row[1]) for row in rows(comparison)}
    assert pairs == {(module.label(shape), scheme) for shape in module.SMOKE_SHAPES for scheme in module.PAIRS}
    assert [row[1] for row in rows(conv)] == list(module.CONV_ONLY)
    assert rows(conv)[0][3] == "1.00"  # Keras's Orthogonal is the baseline of that table
    (profile,) = module.main(["--smoke", "--repeats", "1", "--profile"])
    ops = [row[0] for table in profile.split("## ")[1:] for row in rows(table)]
    assert "ops.qr" in ops and "random.normal" in ops
    assert "kinit against Keras" in capsys.readouterr().out


def test_lsuv_uses_fewer_forward_passes_than_the_sub_model_baseline(capsys):
    module = load_benchmark("lsuv")
    (table,) = module.main(["--smoke"])
    assert table in capsys.readouterr().out
    body = rows(table)
    assert [row[1] for row in body] == [module.OURS, module.BASELINE] * 2  # MLP and CNN
    for ours, baseline in (body[0:2], body[2:4]):
        # One pass checks a layer and measures the next: fewer passes than per-layer sub-models.
        assert median(ours[3]) < median(baseline[3])
        assert median(ours[6]) < 1 and baseline[6] == "1.00"


def test_example_walltime_runs_the_example_and_a_plain_fit(capsys):
    (table,) = load_benchmark("example_walltime").main(["--smoke"])
    assert table in capsys.readouterr().out
    ((mode, schemes, epochs, examples, *times),) = rows(table)
    assert (mode, schemes, epochs, examples) == ("smoke", "2", "1", "256")
    process_total, per_scheme = median(times[0]), median(times[1])
    assert process_total > 2 * per_scheme  # the process ran both schemes
