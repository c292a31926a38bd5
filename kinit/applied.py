"""What `initialize` applied to each variable: a record kept per model.

`kinit.initialize` remembers, for every variable it fills, the report row of
the rule it applied (scheme, reason and the initializer instance that drew
the values). `kinit.audit` reads it back to compare each variable with the
rule that was meant for it, whatever policy chose that rule (``"auto"``, a
map, a scheme, a registered recipe). `kinit.lsuv` records its own: the
kernel's rule times the product of its rescalings (`kinit.implied.Rescaled`),
and zeros for the biases.

The record is weak: it is held per model object that was initialized and
goes away with that model, and it names each variable by identity, so a
variable that is later replaced (a layer rebuilt) has no record. A later
`initialize` of the same variable replaces its entry; a weight that
`initialize` left unchanged keeps the rule recorded before, if any.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Tuple

_SERIALS = itertools.count()
#: model → {id(variable): Applied}
_RECORDS: "weakref.WeakKeyDictionary[Any, Dict[int, Applied]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Applied:
    """One variable's last rule: the `InitRow` of the `initialize` call that set it."""

    reference: Any  # a weak reference to the variable (or the variable itself)
    row: Any
    serial: int
    source: str = "initialize"

    @property
    def variable(self):
        """The variable, or None if it no longer exists."""
        return self.reference() if isinstance(self.reference, weakref.ref) else self.reference


def remember(model, pairs: Iterable[Tuple[Any, Any]], source: str = "initialize") -> None:
    """Record ``(variable, row)`` pairs of an `initialize` call (or of
    `source`, such as ``"lsuv"``) on `model`."""
    entries = _RECORDS.setdefault(model, {})
    for variable, row in pairs:
        entries[id(variable)] = Applied(_reference(variable), row, next(_SERIALS), source)


def applied_rules(layers: Iterable[Any]) -> Dict[int, Applied]:
    """The latest rule of every variable recorded under any of `layers` (a
    model and its nested models and layers), keyed by ``id(variable)``."""
    found: Dict[int, Applied] = {}
    for layer in layers:
        try:
            entries = _RECORDS.get(layer)
        except TypeError:  # an object that cannot be weakly referenced was never recorded
            entries = None
        for key, applied in (entries or {}).items():
            if applied.variable is None:
                continue
            if key not in found or applied.serial > found[key].serial:
                found[key] = applied
    return found


def forget(model) -> None:
    """Drop what was recorded for `model` (e.g. after loading other weights into it)."""
    _RECORDS.pop(model, None)


def _reference(variable):
    try:
        return weakref.ref(variable)
    except TypeError:
        return variable
