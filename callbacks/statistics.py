"""Statistics of weights, activations and gradients: arrays in, numbers out.

Pure NumPy, no TensorFlow and no TensorBoard, so `diagnose` and the callback
share one definition of every number and the tests can check each one alone.
Non-finite values (NaN, ±Inf) are counted and left out of every other
statistic; a statistic with nothing finite to summarize is ``None``.
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

#: Activations whose output is exactly zero below a threshold: a unit can die.
ZERO_FLOOR_ACTIVATIONS = frozenset({"relu", "relu6"})

#: Saturated region of each bounded activation, as a predicate on its output
#: (operators only, so it applies to NumPy arrays and TensorFlow tensors alike).
SATURATION_RULES = {
    "sigmoid": lambda out: (out < 0.01) | (out > 0.99),
    "hard_sigmoid": lambda out: (out < 0.01) | (out > 0.99),
    "tanh": lambda out: abs(out) > 0.99,
}


def as_float_array(values) -> np.ndarray:
    """`values` as a floating NumPy array (integers become float64)."""
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def summarize(values) -> dict:
    """Finite-value summary of any tensor.

    Returns ``count`` (finite elements), ``nan``, ``inf``, and over the finite
    elements ``mean``, ``std`` (population, ddof=0), ``min``, ``max``,
    ``norm`` (Euclidean) and ``zero_fraction`` (exact zeros / count).

    Example:

    >>> summarize([1.0, -1.0, float("nan")])["std"]
    1.0
    """
    array = as_float_array(values)
    finite_mask = np.isfinite(array)
    if finite_mask.all():
        nan = inf = 0
        finite = array.reshape(-1)
    else:
        nan = int(np.count_nonzero(np.isnan(array)))
        inf = int(np.count_nonzero(np.isinf(array)))
        finite = array[finite_mask]
    count = int(finite.size)
    stats = {"count": count, "nan": nan, "inf": inf}
    if count == 0:
        return {**stats, **dict.fromkeys(
            ("mean", "std", "min", "max", "norm", "zero_fraction"))}
    return {
        **stats,
        "mean": float(np.mean(finite, dtype=np.float64)),
        "std": float(np.std(finite, dtype=np.float64)),
        "min": float(np.min(finite)),
        "max": float(np.max(finite)),
        "norm": euclidean_norm(finite),
        "zero_fraction": float(np.count_nonzero(finite == 0) / count),
    }


def activation_summary(values, activation: Optional[str] = None) -> dict:
    """Health numbers of a layer's output on a probe batch (examples first).

    * ``signal``: variation across examples, ``sqrt(mean_f var_i x[i, f])``
      over every output feature f (what tells inputs apart; 0 when every
      example gives the same output).
    * ``dead_fraction``: fraction of units (last axis) that are exactly zero
      for every example and position.
    * ``saturated_fraction``: fraction of finite outputs in the saturated
      region of `activation` (sigmoid / hard_sigmoid: < 0.01 or > 0.99;
      tanh: |x| > 0.99); ``None`` for other activations.
    """
    array = as_float_array(values)
    if array.ndim == 0:
        array = array.reshape(1, 1)
    finite = np.isfinite(array)
    per_feature = array.reshape(array.shape[0], -1)
    if finite.all():
        signal = float(np.sqrt(np.mean(np.var(per_feature, axis=0, dtype=np.float64))))
    else:
        signal = _nan_signal(np.where(finite.reshape(per_feature.shape), per_feature, np.nan))
    units = array.reshape(-1, array.shape[-1]) if array.ndim > 1 else array.reshape(-1, 1)
    rule = SATURATION_RULES.get(activation)
    saturated = None
    if rule is not None and finite.any():
        saturated = float(np.count_nonzero(rule(array[finite])) / np.count_nonzero(finite))
    return {
        "signal": signal,
        "dead_fraction": float(np.mean(np.all(units == 0, axis=0))),
        "saturated_fraction": saturated,
    }


def _nan_signal(per_feature: np.ndarray) -> Optional[float]:
    """`signal` ignoring NaN entries; None if no feature has a finite variance."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN features
        variances = np.nanvar(per_feature, axis=0, dtype=np.float64)
    return float(np.sqrt(np.nanmean(variances))) if np.isfinite(variances).any() else None


def identical_units(kernel, axis: int = -1) -> Optional[bool]:
    """Whether every unit (slice along `axis`) of `kernel` holds the same values.

    ``None`` when the question does not apply: fewer than two units, a 1-D
    tensor, or non-finite values.
    """
    array = as_float_array(kernel)
    if array.ndim < 2 or array.shape[axis] < 2 or not np.isfinite(array).all():
        return None
    return identical_slices(array, axis)


def identical_slices(values, axis: int = -1) -> bool:
    """Whether every slice of `values` along `axis` holds the same values
    (NaN never equals anything)."""
    array = np.asarray(values)
    if array.ndim == 0:
        return True
    units = np.moveaxis(array, axis, -1).reshape(-1, array.shape[axis])
    return bool(np.all(units == units[:, :1]))


def update_ratio(previous, current) -> Optional[float]:
    """Relative change ``‖current − previous‖ / ‖current‖``.

    ``None`` when it is undefined: a zero or non-finite current tensor, or a
    non-finite difference.
    """
    current = as_float_array(current)
    scale = euclidean_norm(current)
    if not 0 < scale < np.inf:
        return None
    ratio = euclidean_norm(current - as_float_array(previous)) / scale
    return ratio if np.isfinite(ratio) else None


def euclidean_norm(values: np.ndarray) -> float:
    """‖values‖ accumulated in float64 (without BLAS, whose threads would
    compete with the framework's for the same cores)."""
    return float(np.sqrt(np.sum(np.square(values, dtype=np.float64))))


def combined_rms(norms_and_counts) -> Optional[float]:
    """Root mean square over several tensors from their (norm, count) pairs."""
    pairs = [(n, c) for n, c in norms_and_counts if n is not None and c]
    total = sum(c for _, c in pairs)
    return float(np.sqrt(sum(n * n for n, _ in pairs) / total)) if total else None
