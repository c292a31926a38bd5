"""The comparison script's flags: a bad value is refused in one line on stderr,
with a non-zero exit, before any data is loaded or anything is written;
`--help` gives every flag a text and one default.

The script runs in a subprocess from an empty working directory, pointed at a
data directory that does not exist: a flag that got through would end in the
loader's "does not exist" (exit 1), never in training.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from test_examples import EXAMPLES, comparison, data_module

SCRIPT = EXAMPLES / "fashion_mnist_comparison.py"
NO_DATA = ["--no-download", "--data-dir", "absent"]


def run_script(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def tree(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def a_file(cwd: Path) -> None:
    (cwd / "taken").write_text("not a directory")


def an_earlier_comparison(cwd: Path) -> None:
    (cwd / "old" / "logs" / "zeros" / "train").mkdir(parents=True)
    (cwd / "old" / "results.csv").write_text("scheme\nzeros\n")


BAD_FLAGS = [
    (["--seed", "-1"], "argument --seed: must be an integer in [0, 4294967295]; received '-1'"),
    (["--seed", "99999999999"], "argument --seed: must be an integer in [0, 4294967295]; received '99999999999'"),
    (["--epochs", "0"], "argument --epochs: must be an integer ≥ 1; received '0'"),
    (["--epochs", "-1"], "argument --epochs: must be an integer ≥ 1; received '-1'"),
    (["--epochs", "2.5"], "argument --epochs: must be an integer ≥ 1; received '2.5'"),
    (["--test-size", "0"], "argument --test-size: must be an integer in [1, 10000]; received '0'"),
    (["--train-size", "0"], "argument --train-size: must be an integer in [1, 60000]; received '0'"),
    (["--train-size", "100000"], "argument --train-size: must be an integer in [1, 60000]; received '100000'"),
    (["--probe-size", "1"], "argument --probe-size: must be an integer in [2, 4096]; received '1'"),
    (["--train-size", "100", "--probe-size", "200"],
     "argument --probe-size: 200 is more than the 100 training examples it is drawn from (--train-size)"),
    (["--batch-size", "0"], "argument --batch-size: must be an integer ≥ 1; received '0'"),
    (["--hidden", "0"], "argument --hidden: must be an integer ≥ 1; received '0'"),
    (["--hidden", "256", "-3"], "argument --hidden: must be an integer ≥ 1; received '-3'"),
    (["--dropout", "1.5"], "argument --dropout: must be a number in [0, 1); received '1.5'"),
    (["--dropout", "1"], "argument --dropout: must be a number in [0, 1); received '1'"),
    (["--learning-rate", "-1"], "argument --learning-rate: must be a number > 0; received '-1'"),
    (["--learning-rate", "nan"], "argument --learning-rate: must be a number > 0; received 'nan'"),
    (["--learning-rate", "inf"], "argument --learning-rate: must be a number > 0; received 'inf'"),
    (["--target-accuracy", "2"], "argument --target-accuracy: must be a number in [0, 1]; received '2'"),
    (["--schemes", "zeros", "he_normal", "zeros"],
     "argument --schemes: zeros given more than once; each scheme is one run, name it once"),
    (["--schemes", "nope"], "argument --schemes: invalid choice: 'nope'"),
    (["--output-dir", "taken"], "argument --output-dir: taken is a file, not a directory", a_file),
    (["--output-dir", "taken/run"],
     "argument --output-dir: taken/run lies under taken, which is a file, not a directory", a_file),
    (["--output-dir", "old"], "argument --output-dir: old already holds logs, results.csv of an earlier "
                              "comparison; choose a new directory or remove them", an_earlier_comparison),
]


@pytest.mark.parametrize("case", BAD_FLAGS, ids=[" ".join(case[0]) for case in BAD_FLAGS])
def test_a_bad_flag_is_one_line_on_stderr_before_anything_is_loaded_or_written(tmp_path, case):
    args, message, *setup = case
    for prepare in setup:
        prepare(tmp_path)
    before = tree(tmp_path)
    process = run_script([*args, *NO_DATA], tmp_path)
    assert process.returncode == 2, process.stderr[-2000:]
    assert len(process.stderr.splitlines()) == 1, process.stderr[-2000:]
    assert process.stderr.startswith(f"fashion_mnist_comparison.py: error: {message}"), process.stderr
    assert process.stdout == ""
    assert tree(tmp_path) == before


def test_values_at_the_edges_of_each_range_are_accepted(tmp_path):
    # Accepted flags reach the loader, which stops at the absent data directory.
    process = run_script(["--seed", "4294967295", "--epochs", "1", "--train-size", "60000",
                          "--test-size", "10000", "--probe-size", "4096", "--batch-size", "1",
                          "--hidden", "1", "--dropout", "0", "--learning-rate", "1e-9",
                          "--target-accuracy", "1", *NO_DATA], tmp_path)
    assert process.returncode == 1
    assert process.stderr.splitlines()[-1].startswith("error: --data-dir absent does not exist")
    assert tree(tmp_path) == []


def test_probe_limit_is_the_diagnostics_limit():
    from kinit.callbacks.observe import MAX_PROBE_EXAMPLES

    assert comparison.PROBE_MAX == MAX_PROBE_EXAMPLES


def help_entries(text: str) -> dict[str, str]:
    """--help's option entries, by their first flag, each on one line."""
    entries: dict[str, str] = {}
    for line in text.split("\noptions:\n", 1)[1].splitlines():
        if line.startswith("  -"):
            flag = line.split()[0].rstrip(",")
            entries[flag] = line.strip()
        elif line.strip():
            entries[flag] += " " + line.strip()
    return entries


def test_help_gives_every_flag_a_text_and_exactly_one_default(tmp_path):
    process = run_script(["--help"], tmp_path)
    assert process.returncode == 0
    entries = help_entries(process.stdout)
    del entries["-h"]
    assert len(entries) == 16
    for flag, entry in entries.items():
        assert entry.count("(default") == 1 and entry.count("(default: ") == 1, entry
        assert "None" not in entry, entry
    assert "(default: 10; 2 with --quick)" in entries["--epochs"]
    assert "(default: 128)" in entries["--batch-size"]


def test_accuracy_and_loss_plots_tick_whole_epochs():
    runs = [types.SimpleNamespace(scheme=types.SimpleNamespace(label="a"),
                                  history={"val_accuracy": [0.5, 0.7], "val_loss": [1.0, 0.6]})]
    figure = comparison.curves_figure(runs)
    for axis in figure.axes:
        ticks = [tick for tick in axis.get_xticks() if 1 <= tick <= 2]
        assert ticks == [1, 2], ticks
    comparison.pyplot().close(figure)


def test_sizes_beyond_the_data_found_are_said_not_silently_clamped(tmp_path, capsys):
    data_dir = data_module.write_synthetic(tmp_path / "data", n_train=50, n_test=20)
    args = comparison.parse_args(["--data-dir", str(data_dir), "--train-size", "80", "--test-size", "20",
                                  "--probe-size", "8", "--output-dir", str(tmp_path / "out")])
    data = comparison.prepare_data(args)
    assert (len(data.x_train), len(data.x_val)) == (50, 20)
    assert capsys.readouterr().out.splitlines() == [
        f"note: {data_dir} has 50 training examples, fewer than --train-size 80; using all 50."
    ]
