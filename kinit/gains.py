"""Recommended gains per nonlinearity, as in ``torch.nn.init.calculate_gain``.

A gain ``g`` multiplies the standard deviation of a variance-preserving
initializer (``Var(W) = g² / fan``) to make up for how much a nonlinearity
shrinks the second moment of the signal.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np

from kinit.validation import check_choice, check_number

#: Gains that are fixed numbers, taken from torch.nn.init's table.
TABLE_GAINS = {
    "linear": 1.0,
    "identity": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "conv_transpose1d": 1.0,
    "conv_transpose2d": 1.0,
    "conv_transpose3d": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0),
    "selu": 3.0 / 4.0,
}

#: Nonlinearities whose gain follows the second-moment rule (see `calculate_gain`).
MOMENT_RULE_NONLINEARITIES = ("gelu", "silu", "swish", "elu")

#: Nonlinearities that take `param`, with its meaning and default.
PARAMETRIZED = {"leaky_relu": ("negative_slope", 0.01), "elu": ("alpha", 1.0)}

NONLINEARITIES = tuple(TABLE_GAINS) + ("leaky_relu",) + MOMENT_RULE_NONLINEARITIES


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """Return the recommended gain for `nonlinearity`.

    ==================================  =====================================
    nonlinearity                        gain
    ==================================  =====================================
    linear, identity, conv*, sigmoid    1
    tanh                                5/3
    relu                                √2
    leaky_relu (param = slope a)        √(2 / (1 + a²)), a = 0.01 by default
    selu                                3/4
    gelu, silu (swish), elu (param=α)   1 / √E[φ(z)²], z ~ N(0, 1)
    ==================================  =====================================

    The first five rows are torch.nn.init's table, so values agree with
    PyTorch. torch has no entry for GELU, SiLU or ELU; for those kinit uses the
    *second-moment rule*: the gain that restores the second moment of a unit
    Gaussian pre-activation after the nonlinearity, the same rule that yields
    √2 for ReLU. It evaluates to about 1.5335 for GELU (exact erf form),
    1.6765 for SiLU and 1.2452 for ELU with α = 1, computed by Gauss-Hermite
    quadrature.

    Example:

    >>> calculate_gain("relu")
    1.4142135623730951
    >>> calculate_gain("leaky_relu", 0.2)
    1.386750490563073

    Args:
        nonlinearity: one of the names in the table (case-sensitive, as Keras
            activation names are).
        param: the negative slope for ``"leaky_relu"`` or α for ``"elu"``;
            must be omitted for every other nonlinearity.

    Reference:
        torch.nn.init.calculate_gain; He et al. 2015, "Delving Deep into
        Rectifiers" (the ReLU and leaky-ReLU gains).
    """
    check_choice("calculate_gain", "nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity in PARAMETRIZED:
        meaning, default = PARAMETRIZED[nonlinearity]
        value = check_number(
            "calculate_gain", "param", default if param is None else param,
            minimum=0.0 if nonlinearity == "elu" else None,
        )
        if nonlinearity == "leaky_relu":
            return math.sqrt(2.0 / (1.0 + value**2))
        return _moment_rule_gain("elu", value)
    if param is not None:
        raise ValueError(
            "calculate_gain: argument `param` applies only to "
            f"{', '.join(map(repr, PARAMETRIZED))}; received param={param!r} "
            f"with nonlinearity={nonlinearity!r}."
        )
    if nonlinearity in TABLE_GAINS:
        return TABLE_GAINS[nonlinearity]
    return _moment_rule_gain("silu" if nonlinearity == "swish" else nonlinearity, None)


_ACTIVATIONS = {
    "gelu": lambda z, _: 0.5 * z * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0))),
    "silu": lambda z, _: z / (1.0 + np.exp(-z)),
    "elu": lambda z, alpha: np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0))),
}


@functools.lru_cache(maxsize=64)
def _moment_rule_gain(name: str, param: Optional[float]) -> float:
    # E[φ(z)²] for z ~ N(0, 1) by Gauss-Hermite (probabilists') quadrature.
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    second_moment = float(np.sum(weights * _ACTIVATIONS[name](nodes, param) ** 2) / np.sum(weights))
    return 1.0 / math.sqrt(second_moment)
