"""Argument checks shared by every kinit initializer.

Each check returns the cleaned value or raises a `ValueError` that names the
owner, the argument, the value received and what is allowed, so a bad
configuration fails at construction rather than deep inside a layer build.
"""

from __future__ import annotations

import math
import numbers
from typing import Iterable, Optional

MAX_SEED = 2**31 - 1


def _fail(owner: str, name: str, value, allowed: str) -> ValueError:
    return ValueError(
        f"{owner}: argument `{name}` must be {allowed}; received {name}={value!r}."
    )


def check_number(
    owner: str,
    name: str,
    value,
    *,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    strict: bool = True,
    allow_none: bool = False,
) -> Optional[float]:
    """Return `value` as a float after checking it is a finite real number.

    `minimum` and `maximum` bound it: exclusive with `strict=True`
    (``minimum < value < maximum``), inclusive with `strict=False`.
    Booleans are refused: `True` is a number to Python but never a
    meaningful scale.
    """
    if value is None and allow_none:
        return None
    allowed = _describe(minimum, maximum, strict)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(owner, name, value, allowed)
    value = float(value)
    if not math.isfinite(value):
        raise _fail(owner, name, value, allowed)
    below = minimum is not None and (value <= minimum if strict else value < minimum)
    above = maximum is not None and (value >= maximum if strict else value > maximum)
    if below or above:
        raise _fail(owner, name, value, allowed)
    return value


def check_bool(owner: str, name: str, value) -> bool:
    """Return `value` if it is True or False (no truthy stand-ins such as 1 or "no")."""
    if not isinstance(value, bool):
        raise _fail(owner, name, value, "True or False")
    return value


def check_int(owner: str, name: str, value, *, minimum: int = 0) -> int:
    """Return `value` as an int after checking it is an integer >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(owner, name, value, f"an integer >= {minimum}")
    if value < minimum:
        raise _fail(owner, name, value, f"an integer >= {minimum}")
    return int(value)


def check_choice(owner: str, name: str, value, choices: Iterable[str]) -> str:
    """Return `value` if it is one of `choices` (strings, case-sensitive)."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        allowed = "one of " + ", ".join(repr(c) for c in choices)
        raise _fail(owner, name, value, allowed)
    return value


def check_seed(owner: str, seed) -> Optional[int]:
    """Return the seed: `None` or an int in [0, 2**31 - 1]."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise _fail(owner, "seed", seed, f"None or an integer in [0, {MAX_SEED}]")
    if not 0 <= seed <= MAX_SEED:
        raise _fail(owner, "seed", seed, f"None or an integer in [0, {MAX_SEED}]")
    return int(seed)


def _describe(minimum, maximum, strict) -> str:
    base = "a finite number"
    if minimum is not None and maximum is not None:
        low, high = ("(", ")") if strict else ("[", "]")
        return f"{base} in {low}{minimum:g}, {maximum:g}{high}"
    if minimum is not None:
        return f"{base} {'>' if strict else '>='} {minimum:g}"
    if maximum is not None:
        return f"{base} {'<' if strict else '<='} {maximum:g}"
    return base
