"""The two diagnostics benchmarks run at their smallest size and print their tables."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def run_script(name, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_callback_overhead_smoke():
    out = run_script("callback_overhead.py", "--smoke")
    for variant in ("none", "keras TensorBoard", "InitDiagnostics defaults", "InitDiagnostics max"):
        rows = re.findall(rf"^\| {variant} \| ([\d.]+) \|", out, flags=re.M)
        assert len(rows) == 2 and all(float(seconds) > 0 for seconds in rows), variant  # MLP and CNN


def test_histogram_memory_smoke():
    out = run_script("histogram_memory.py", "--elements", "20000", "--repeats", "1")
    for variant in ("tf.summary.histogram", "kinit writer"):
        assert re.search(rf"^\| 2e\+04 \| {re.escape(variant)} \| [\d.]+ \|", out, flags=re.M), variant
