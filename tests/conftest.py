"""Shared test helpers: fresh-process runs and statistical tolerances."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One pytest-xdist worker per core: each worker (and the processes it
    # starts) computes on one thread, else TensorFlow's, XLA's and PyTorch's
    # thread pools of both workers contend for the two cores and spin.
    for variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(variable, "1")


def run_python(code: str, *, backend: str | None = None, cwd=None, timeout: int = 300):
    """Run `code` in a fresh Python process that imports this checkout.

    Returns the CompletedProcess; stdout and stderr are captured as text.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )


def standard_errors(n: int, k: float = 5.0):
    """Tolerances of `k` standard errors for the sample mean and variance.

    For n i.i.d. draws with variance v and fourth central moment m4, the
    sample mean has standard error sqrt(v / n) and the sample variance
    sqrt((m4 - v²) / n). Returned as functions of (v, kurtosis).
    """
    def mean_tol(variance: float) -> float:
        return k * math.sqrt(variance / n)

    def var_tol(variance: float, kurtosis: float = 3.0) -> float:
        return k * variance * math.sqrt((kurtosis - 1.0) / n)

    return mean_tol, var_tol


@pytest.fixture
def fresh_python():
    return run_python



def pytest_collection_modifyitems(config, items):
    """Slow tests first, so that the two workers end together rather than one
    waiting while the other runs a long test collected last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
