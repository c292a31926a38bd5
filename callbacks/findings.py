"""Health findings: plain-language problems read off the statistics rows.

The rules, with their default thresholds (all are arguments of
`InitDiagnostics` and `diagnose`):

* **vanishing / exploding signal** — the across-example variation of a
  layer's output (``signal``) falls below ``1 / vanishing_factor`` (100) or
  rises above ``exploding_factor`` (100) times that of the reference: the
  first floating-point layer output, in the order the layers ran. Integer
  outputs (token ids, lookups, bins) are indices, not a signal: they are
  neither the reference nor compared (``IntegerLookup`` → ``Embedding``:
  the embedding is the reference).
  Softmax outputs are left out: probabilities near ``1 / classes`` vary little
  across examples whatever the scale of the layers below.
* **vanishing / exploding gradients** — the gradient RMS of the first layer
  with gradients, divided by that of the last, is below ``1 / vanishing_factor``
  or above ``exploding_factor``. First and last in the order the layers ran
  on the probe batch (whatever order a subclassed model assigned them in);
  variables of layers that did not run through ``layer(...)`` come last.
* **dead units** — in a ReLU / ReLU6 layer, at least ``dead_fraction`` (0.5)
  of the units output zero for every probe example.
* **saturation** — in a sigmoid / hard-sigmoid / tanh layer, at least
  ``saturated_fraction`` (0.5) of the outputs are saturated.
* **symmetric units** — every unit of a layer has the same kernel column and
  the same bias (zero or constant initialization), and nothing downstream
  tells them apart: the layers reading them hold equal weights for each (equal
  kernel rows of the next layer, looked up through activation, dropout, noise,
  pooling, padding, cropping, reshaping and normalization layers whose
  per-unit weights are equal; see `callbacks.downstream`). Then swapping two
  units changes nothing, so they compute the same output and receive the same
  gradient for ever (dropout during training can still break the tie). A layer
  whose output is a model output is never reported — the loss gives each unit
  its own gradient, so a zero-initialized classifier head parts at the first
  step — and neither is one read by other layers (merges, custom layers) or in
  a subclassed model, whose wiring is not known. No threshold: every report is
  certain.
* **non-finite values** — any NaN or Inf in a weight, activation or gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

from .statistics import ZERO_FLOOR_ACTIVATIONS, combined_rms
from kinit.validation import check_number


@dataclass(frozen=True)
class Thresholds:
    """Thresholds of the health findings (see the module docstring).

    Args:
        vanishing_factor: a fall by more than this factor is "vanishing".
        exploding_factor: a rise by more than this factor is "exploding".
        dead_fraction: fraction of dead units that makes a ReLU layer dead.
        saturated_fraction: fraction of saturated outputs that makes a
            bounded layer saturated.
    """

    vanishing_factor: float = 100.0
    exploding_factor: float = 100.0
    dead_fraction: float = 0.5
    saturated_fraction: float = 0.5

    @classmethod
    def checked(cls, owner: str, **values) -> "Thresholds":
        """Build from keyword arguments, raising `ValueError` naming `owner`."""
        checked = {}
        for name in ("vanishing_factor", "exploding_factor"):
            checked[name] = check_number(owner, name, values[name], minimum=1.0)
        for name in ("dead_fraction", "saturated_fraction"):
            checked[name] = check_number(owner, name, values[name], minimum=0.0)
            if checked[name] > 1.0:
                raise ValueError(f"{owner}: argument `{name}` must be a fraction in (0, 1]; "
                                 f"received {name}={values[name]!r}.")
        return cls(**checked)


@dataclass(frozen=True)
class Finding:
    """One problem: what (`problem`), where (`path`, a layer's) and a sentence."""

    problem: str
    path: str
    message: str

    @property
    def key(self) -> tuple:
        """Identity of the finding across logs (its numbers may change)."""
        return (self.problem, self.path)

    def __str__(self) -> str:
        return self.message


def find_problems(rows: Sequence, thresholds: Thresholds) -> List[Finding]:
    """All findings for one set of statistics rows, in a stable order."""
    return [
        *_non_finite(rows),
        *_symmetric(rows),
        *_dead(rows, thresholds),
        *_saturated(rows, thresholds),
        *_signal(rows, thresholds),
        *_gradients(rows, thresholds),
    ]


def _non_finite(rows) -> List[Finding]:
    per_layer: Dict[str, List[str]] = {}
    for row in rows:
        if row["nan"] or row["inf"]:
            per_layer.setdefault(row["path"], []).append(
                f"{row['kind']} {row['name']}: {row['nan']} NaN, {row['inf']} Inf")
    return [Finding("non-finite", layer, f"non-finite values in '{layer}' ({'; '.join(parts)}); "
                    "they are left out of histograms and statistics")
            for layer, parts in per_layer.items()]


def _symmetric(rows) -> List[Finding]:
    found = []
    for row in rows:
        if row["kind"] != "weight" or not (row.get("identical_units") and row.get("identical_outgoing")):
            continue
        bias_name = row["name"][: -len("kernel")] + "bias"  # query/kernel -> query/bias
        bias = [r for r in rows if r["kind"] == "weight" and r["path"] == row["path"] and r["name"] == bias_name]
        if all(b["std"] == 0 for b in bias):
            found.append(Finding(
                "symmetric", row["path"],
                f"symmetric units in '{row['path']}': every unit has the same weights "
                f"({row['name']}{' and bias' if bias else ''}) and the layers after it read "
                "them alike, so all units compute the same output and get the same gradient "
                "for ever; initialize the kernel randomly"))
    return found


def _dead(rows, thresholds) -> List[Finding]:
    return [
        Finding("dead", row["path"],
                f"dead units in '{row['path']}': {row['dead_fraction']:.0%} of its units output "
                f"zero for every probe example (threshold {thresholds.dead_fraction:.0%})")
        for row in _activations(rows)
        if row["activation"] in ZERO_FLOOR_ACTIVATIONS
        and row["dead_fraction"] >= thresholds.dead_fraction
    ]


def _saturated(rows, thresholds) -> List[Finding]:
    return [
        Finding("saturated", row["path"],
                f"saturated layer '{row['path']}': {row['saturated_fraction']:.0%} of its "
                f"{row['activation']} outputs are in the flat region, where gradients vanish "
                f"(threshold {thresholds.saturated_fraction:.0%})")
        for row in _activations(rows)
        if row["saturated_fraction"] is not None
        and row["saturated_fraction"] >= thresholds.saturated_fraction
    ]


# Outputs that sum to one vary little across examples whatever the scale
# below them (tiny logits give probabilities near 1/classes): not a signal.
NORMALIZING_ACTIVATIONS = frozenset({"softmax", "log_softmax"})


def _signal(rows, thresholds) -> List[Finding]:
    # Integer outputs (token ids, lookups, bins) are indices, not a signal.
    layers = [row for row in _activations(rows)
              if row["signal"] is not None and row["activation"] not in NORMALIZING_ACTIVATIONS
              and "float" in row["dtype"]]
    if len(layers) < 2 or layers[0]["signal"] == 0:
        return []
    first = layers[0]
    for row in layers[1:]:
        ratio = row["signal"] / first["signal"]
        problem = _direction(ratio, thresholds)
        if problem is not None:
            consequence = ("; deeper layers can no longer tell inputs apart"
                           if problem == "vanishing" else "")
            return [Finding(
                problem, row["path"],
                f"{problem} signal: the variation of outputs across examples goes from "
                f"{first['signal']:.3g} at '{first['path']}' to {row['signal']:.3g} at "
                f"'{row['path']}' ({_change(ratio, thresholds)}){consequence}")]
    return []


def _gradients(rows, thresholds) -> List[Finding]:
    per_layer: Dict[str, list] = {}
    for row in rows:
        if row["kind"] == "gradient":
            per_layer.setdefault(row["path"], []).append((row["norm"], row["count"]))
    rms = [(layer, combined_rms(pairs)) for layer, pairs in per_layer.items()]
    rms = [(layer, value) for layer, value in rms if value is not None]
    if len(rms) < 2 or rms[-1][1] == 0:
        return []
    (first, first_rms), (last, last_rms) = rms[0], rms[-1]
    ratio = first_rms / last_rms
    problem = _direction(ratio, thresholds)
    if problem is None:
        return []
    return [Finding(
        f"{problem} gradients", first,
        f"{problem} gradients: gradient RMS is {last_rms:.3g} at the last layer '{last}' "
        f"and {first_rms:.3g} at the first layer '{first}' ({_change(ratio, thresholds)})")]


def _activations(rows) -> List[dict]:
    return [row for row in rows if row["kind"] == "activation"]


def _direction(ratio: float, thresholds: Thresholds):
    if ratio < 1 / thresholds.vanishing_factor:
        return "vanishing"
    if ratio > thresholds.exploding_factor:
        return "exploding"
    return None


def _change(ratio: float, thresholds: Thresholds) -> str:
    if ratio == 0:
        return f"down to zero; threshold {thresholds.vanishing_factor:g}x"
    if ratio < 1:
        return f"down {1 / ratio:.3g}x; threshold {thresholds.vanishing_factor:g}x"
    return f"up {ratio:.3g}x; threshold {thresholds.exploding_factor:g}x"
