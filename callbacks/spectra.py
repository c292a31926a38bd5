"""Spectral health of a kernel: spectral norm, stable rank and power-law α.

Pure NumPy, numbers in, numbers out (no TensorFlow, no TensorBoard), like
`kinit.callbacks.statistics`; on the TensorFlow backend the callback and
`diagnose` hand `spectral_statistics` the eigenvalue solver of
`kinit.callbacks.tensor_spectra` (the same numbers, computed by TensorFlow,
whose threads do not fight NumPy's BLAS for the cores). A kernel of shape
``(*spatial, in, out)`` is read as the matrix ``W`` of shape
``(prod(shape[:-1]), out)`` — a unit's inputs by the units, as
`kinit.kernel_shapes.flat_matrix_dims` reads it (a kernel whose units are
on another axis, such as a transposed convolution's, has that axis moved
last first). With ``N × M`` its shape, ``σ_1 ≥ σ_2 ≥ …`` its
singular values and ``λ_i = σ_i²`` the eigenvalues of ``WᵀW`` (of its
``min(N, M)`` eigenvalues; ``WWᵀ`` has the same non-zero ones):

* ``spectral_norm`` = ``σ_max`` = ``sqrt(λ_max)``, the largest factor by
  which the layer can stretch an input;
* ``stable_rank`` = ``‖W‖_F² / σ_max²`` = ``Σ λ_i / λ_max``, between 1 (one
  direction dominates) and the rank (all singular values equal, as in an
  orthogonal matrix); unlike the rank it does not jump when a tiny singular
  value becomes zero;
* ``alpha``, the exponent of a power law ``p(λ) ∝ λ^(−α)`` fitted to the
  tail ``λ ≥ x_min`` of the eigenvalue spectrum, WeightWatcher's metric
  (Martin & Mahoney, 2021): by maximum likelihood for a continuous power
  law (Clauset, Shalizi & Newman, 2009, §3.1),

      α = 1 + n / Σ_{λ_i ≥ x_min} ln(λ_i / x_min),     n = #{λ_i ≥ x_min},

  with ``x_min`` chosen among the eigenvalues as the one whose fit has the
  smallest Kolmogorov–Smirnov distance

      D = max_{λ_i ≥ x_min} | (1 − (λ_i / x_min)^(1 − α)) − F_n(λ_i) |

  between the fitted CDF and the empirical CDF ``F_n`` of the tail. As in
  Clauset et al.'s reference ``plfit``, the ``powerlaw`` package (its
  ``statistics.cdf``) and WeightWatcher's own ``WWFit.fit_power_law``,
  ``F_n(λ_i)`` is the fraction of the tail strictly below ``λ_i`` (``i/n``
  for the i-th smallest, 0-based; tied values share the value of the first
  of them), and every distinct eigenvalue that leaves a large enough tail
  is a candidate, as WeightWatcher's fit does (the current ``powerlaw``
  does so with ``test_all_xmin=True`` and otherwise tries a logarithmic
  grid of values). α is not capped: a spectrum without a heavy tail gives
  a large α, reported as it is.

How to read α (Martin & Mahoney): 2 to 6 is typical of the layers of
well-trained networks, below 2 of heavily correlated (over-fitted) ones;
a random layer has no heavy tail — the Marchenko–Pastur bulk of a Gaussian
matrix ends at a hard edge, and the fit there gives a large α: 6.8 to 49
(median 13) for 1000 × 1000 Gaussian matrices, 4.2 to 38 (median 9.7) for
784 × 256 ones (float32, 30 seeds each). Short spectra say little: the 10
eigenvalues of a 128 × 10 Gaussian kernel fit α from 3.0 to 10 (median 4.6).

What the fit refuses, returning ``None`` rather than a number that means
nothing:

* eigenvalues at or below ``max(N, M) · ε · λ_max`` (ε of float64: the
  rounding floor of ``WᵀW``, computed in float64) count as zero and are
  left out of the fit (WeightWatcher likewise leaves out near-zero ones);
* fewer than `MIN_EIGENVALUES` (10, WeightWatcher's default ``min_evals``)
  non-zero eigenvalues: no fit;
* a candidate ``x_min`` must leave at least `MIN_TAIL` (5) eigenvalues in
  the tail — the MLE's standard error ``(α − 1)/√n`` is already 45 % of
  ``α − 1`` there (WeightWatcher and ``powerlaw`` allow 2; the two choices
  gave the same fit for 100 Pareto spectra of 2000 values and for
  Gaussian kernels of 32 to 500 units, and differed for 5 of 60 Gaussian
  kernels of 10 units) — and
  they must spread: ``ln(λ_max / x_min) > MIN_SPREAD`` (1e-4; the float32
  rounding of an orthogonal kernel's entries spreads its eigenvalues, all
  1, by 2e-6 at 64 × 64 to 1.1e-5 at 4096 × 4096: no tail to fit, not a
  huge α). With no such candidate there is no fit.

A kernel holding NaN or ±Inf gives ``None`` for all three numbers; an
all-zero kernel has spectral norm 0 and neither stable rank nor α.

References:
    - Martin & Mahoney, "Implicit self-regularization in deep neural
      networks: evidence from random matrix theory and implications for
      learning", JMLR 22(165), 2021; Martin, Peng & Mahoney, "Predicting
      trends in the quality of state-of-the-art neural networks without
      access to training or testing data", Nature Communications 12, 4122
      (2021) — the WeightWatcher metrics.
    - Clauset, Shalizi & Newman, "Power-law distributions in empirical
      data", SIAM Review 51(4), 2009 — the maximum-likelihood α (§3.1) and
      the Kolmogorov–Smirnov choice of x_min (§3.3).
    - Alstott, Bullmore & Plenz, "powerlaw: a Python package for analysis
      of heavy-tailed distributions", PLoS ONE 9(1), 2014.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

#: Fewest non-zero eigenvalues a spectrum needs for α (WeightWatcher's min_evals).
MIN_EIGENVALUES = 10
#: Fewest eigenvalues a tail may hold: a candidate x_min must leave this many.
MIN_TAIL = 5
#: Least spread of a tail, as ln(λ_max / x_min).
MIN_SPREAD = 1e-4
#: The three numbers, as the rows name them.
KEYS = ("spectral_norm", "stable_rank", "alpha")
#: Elements of one candidates × tail block of the Kolmogorov–Smirnov scan
#: (float64: 512 KiB, which stays in cache; larger blocks were several times slower).
_BLOCK = 1 << 16


class PowerLawFit(NamedTuple):
    """A power law fitted to the tail of a spectrum."""

    alpha: float
    x_min: float
    tail: int  # eigenvalues ≥ x_min
    distance: float  # Kolmogorov–Smirnov distance D of the fit


def kernel_matrix(kernel, units_axis: int = -1) -> np.ndarray:
    """The kernel as a float64 matrix ``(prod(other axes), units)``.

    A rank-1 kernel is one column; a scalar, a 1 × 1 matrix.
    """
    array = np.asarray(kernel, dtype=np.float64)
    if array.ndim < 2:
        return array.reshape(-1, 1)
    array = np.moveaxis(array, units_axis, -1)
    return array.reshape(-1, array.shape[-1])


def eigenvalues(matrix) -> np.ndarray:
    """The ``min(N, M)`` eigenvalues of ``WᵀW`` (or ``WWᵀ``), ascending, ≥ 0.

    From the smaller Gram matrix in float64 (`numpy.linalg.eigvalsh`,
    several times faster than an SVD of `matrix`; the eigenvalues agree with
    the squared singular values to ``~ε · λ_max``).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    gram = matrix.T @ matrix if matrix.shape[0] >= matrix.shape[1] else matrix @ matrix.T
    return np.clip(np.linalg.eigvalsh(gram), 0.0, None)


def power_law_fit(values) -> Optional[PowerLawFit]:
    """The power law fitted to the tail of the positive `values` (see the
    module docstring); None when there are too few to fit."""
    x = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    x = x[np.isfinite(x) & (x > 0)]
    n = x.size
    if n < MIN_EIGENVALUES:
        return None
    logs = np.log(x)
    first = np.searchsorted(x, x, side="left")  # index of the first copy of each value
    tails = n - np.arange(n)
    candidates = np.flatnonzero((first == np.arange(n)) & (tails >= MIN_TAIL)
                                & (logs[-1] - logs > MIN_SPREAD))
    if candidates.size == 0:
        return None
    suffix = np.cumsum(logs[::-1])[::-1]  # Σ_{j ≥ i} ln λ_j
    spread = suffix[candidates] - tails[candidates] * logs[candidates]
    alphas = 1.0 + tails[candidates] / spread
    distances = np.concatenate([
        _ks_distances(logs, first, candidates[start:start + size], alphas[start:start + size])
        for start, size in _blocks(candidates.size, n)])
    best = int(np.argmin(distances))  # ties: the smallest x_min, the largest tail
    i = int(candidates[best])
    return PowerLawFit(float(alphas[best]), float(x[i]), int(tails[i]), float(distances[best]))


def _blocks(count: int, n: int):
    size = max(1, _BLOCK // n)
    return ((start, min(size, count - start)) for start in range(0, count, size))


def _ks_distances(logs: np.ndarray, first: np.ndarray, candidates: np.ndarray,
                  alphas: np.ndarray) -> np.ndarray:
    """D of each candidate's fit: fitted CDF against the tail's empirical
    CDF (the fraction of the tail strictly below each value)."""
    low = int(candidates[0])  # ascending: no tail of this block starts before it
    logs, first = logs[low:], first[low:]
    start = (candidates - low)[:, None]
    tail = (logs.size - start).astype(np.float64)
    above = np.maximum(logs[None, :] - logs[start], 0.0)  # ln(λ_j / x_min), 0 below the tail
    fitted = -np.expm1(-(alphas[:, None] - 1.0) * above)
    empirical = (first[None, :] - low - start) / tail
    gaps = np.where(np.arange(logs.size)[None, :] >= start, np.abs(fitted - empirical), 0.0)
    return gaps.max(axis=1)


def spectral_statistics(kernel, units_axis: int = -1, solver=eigenvalues) -> dict:
    """``spectral_norm``, ``stable_rank`` and ``alpha`` of a kernel (see the
    module docstring); None for each one that does not apply. `solver`
    gives the eigenvalues of the kernel's matrix as `eigenvalues` does
    (`kinit.callbacks.tensor_spectra.eigenvalues` computes them with TensorFlow)."""
    result = dict.fromkeys(KEYS)
    matrix = kernel_matrix(kernel, units_axis)
    if matrix.size == 0 or not np.isfinite(matrix).all():
        return result
    spectrum = solver(matrix)
    largest = float(spectrum[-1])
    result["spectral_norm"] = float(np.sqrt(largest))
    if largest > 0:
        result["stable_rank"] = float(np.sum(np.square(matrix))) / largest
        fit = power_law_fit(spectrum[spectrum > max(matrix.shape) * np.finfo(np.float64).eps * largest])
        result["alpha"] = None if fit is None else fit.alpha
    return result
