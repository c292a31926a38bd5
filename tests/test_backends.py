"""The backend-agnostic test modules pass on JAX and PyTorch as well."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import ROOT

# Modules written against keras.ops only; each runs once per backend, in two
# groups of about equal time: each group is one process per backend (importing
# Keras and the backend costs several seconds a process), and the four
# processes spread over pytest-xdist's workers.
BACKEND_AGNOSTIC = [
    ("tests/test_structured.py", "tests/test_model_map.py", "tests/test_residual.py"),
    ("tests/test_schemes.py", "tests/test_keras_layers.py", "tests/test_recipes.py"),
]


@pytest.mark.slow
@pytest.mark.parametrize("modules", BACKEND_AGNOSTIC, ids=lambda group: "+".join(m[11:-3] for m in group))
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_agnostic_modules_pass(backend, modules):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (make test installs it)")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    # JAX computes in float32 unless asked; the dtype tests request float64.
    env["JAX_ENABLE_X64"] = "1"
    # Tiny arrays: XLA's compile time, not the run time, is what costs, and
    # its optimization passes make the JAX run about three times slower.
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *modules],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
