"""The backend-agnostic test modules pass on JAX and PyTorch as well."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import ROOT

# Modules written against keras.ops only; each backend runs them all in one
# process: importing Keras and the backend costs seconds a process, and the
# modules share most of the XLA programs that JAX compiles for its ops (one
# JAX process takes 41 s where two groups of them took 52 s).
BACKEND_AGNOSTIC = ("tests/test_structured.py", "tests/test_model_map.py", "tests/test_residual.py",
                    "tests/test_schemes.py", "tests/test_keras_layers.py", "tests/test_recipes.py")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_agnostic_modules_pass(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (make test installs it)")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    # JAX computes in float32 unless asked; the dtype tests request float64.
    env["JAX_ENABLE_X64"] = "1"
    # Tiny arrays: XLA's compile time, not the run time, is what costs, and
    # its optimization passes make the JAX run about three times slower.
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *BACKEND_AGNOSTIC],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
