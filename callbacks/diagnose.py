"""`diagnose(model, x)`: the callback's statistics and findings without training."""

from __future__ import annotations

from typing import List, Optional

import keras
import numpy as np

from callbacks.findings import Thresholds, find_problems
from callbacks.layers import discover
from callbacks.probe import check_probe, ensure_built, observe
from callbacks.rows import make_row, tensor_summaries
from kinit.report import text_table
from kinit.validation import check_bool

#: Columns of the printed table: (row key, heading, format).
_COLUMNS = (
    ("layer", "layer", "s"), ("kind", "kind", "s"), ("name", "name", "s"),
    ("shape", "shape", "s"), ("mean", "mean", ".3g"), ("std", "std", ".3g"),
    ("min", "min", ".3g"), ("max", "max", ".3g"), ("norm", "norm", ".3g"),
    ("signal", "signal", ".3g"), ("zero_fraction", "zero", ".0%"), ("dead_fraction", "dead", ".0%"),
    ("saturated_fraction", "sat", ".0%"), ("nan", "nan", "d"), ("inf", "inf", "d"),
)
#: Columns added by ``spectra=True``.
_SPECTRA_COLUMNS = (("spectral_norm", "sigma_max", ".3g"), ("stable_rank", "stable_rank", ".3g"),
                    ("alpha", "alpha", ".3g"))


class Diagnosis:
    """The result of `diagnose`: statistics rows, findings and notes.

    Attributes:
        rows: one dict per weight, activation and gradient (keys in
            `callbacks.rows.ROW_KEYS`).
        findings: plain-language problems; empty when the model looks healthy.
        notes: what could not be observed (e.g. gradients without targets).
        spectra: whether the kernels' spectral numbers were computed (the
            table then shows them).
    """

    def __init__(self, rows: List[dict], findings: List[str], notes: List[str], spectra: bool = False):
        self.rows = rows
        self.findings = findings
        self.notes = notes
        self.spectra = spectra

    def to_dataframe(self):
        """The rows as a `pandas.DataFrame` (needs pandas)."""
        try:
            import pandas
        except ImportError as error:
            raise ImportError("Diagnosis.to_dataframe() needs pandas (pip install pandas); "
                              "the same table is in Diagnosis.rows") from error
        return pandas.DataFrame(self.rows)

    def __str__(self) -> str:
        columns = _COLUMNS + (_SPECTRA_COLUMNS if self.spectra else ())
        cells = [[heading for _, heading, _ in columns]]
        cells += [[_cell(row[key], fmt) for key, _, fmt in columns] for row in self.rows]
        lines = [text_table(cells), ""]
        lines += [f"! {finding}" for finding in self.findings] or ["No problems found."]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Diagnosis({len(self.rows)} rows, {len(self.findings)} findings)"


def diagnose(
    model: keras.Model,
    x,
    y=None,
    *,
    loss=None,
    layer_filter: Optional[str] = None,
    vanishing_factor: float = Thresholds.vanishing_factor,
    exploding_factor: float = Thresholds.exploding_factor,
    dead_fraction: float = Thresholds.dead_fraction,
    saturated_fraction: float = Thresholds.saturated_fraction,
    spectra: bool = False,
) -> Diagnosis:
    """Statistics and health findings of a model as it is now, on a batch `x`.

    What a user runs in a notebook right after building a model: the same
    numbers and findings `InitDiagnostics` logs, as a table. Gradients need
    targets `y`, the TensorFlow backend, and a loss (the compiled one, or
    `loss`). The model is run in inference mode and is not changed.

    Example:

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, "relu")])
    >>> report = diagnose(model, np.random.rand(64, 8))
    >>> stds = {r["layer"]: r["std"] for r in report.rows if r["kind"] == "activation"}
    >>> print(report)  # a table, then the findings

    Args:
        model: a Keras model (built or not).
        x: a batch of 2 to 4096 inputs (multi-input: a list or dict).
        y: targets for the same examples, for gradients.
        loss: a loss for the gradients instead of the compiled one.
        layer_filter: a regular expression; only layers whose path matches.
        vanishing_factor, exploding_factor, dead_fraction, saturated_fraction:
            finding thresholds (see `callbacks.findings`).
        spectra: also give each kernel's ``spectral_norm``, ``stable_rank``
            and ``alpha`` (see `callbacks.spectra`; None in the other rows).

    Reference:
        The same as `InitDiagnostics` (Glorot & Bengio, 2010; Goodfellow,
        Bengio & Courville, 2016, §8.4).
    """
    thresholds = Thresholds.checked(
        "diagnose", vanishing_factor=vanishing_factor, exploding_factor=exploding_factor,
        dead_fraction=dead_fraction, saturated_fraction=saturated_fraction)
    spectra = check_bool("diagnose", "spectra", spectra)
    check_probe("diagnose", x, y)
    ensure_built(model, x)
    entries = discover(model, layer_filter)
    observations, notes = observe(model, entries, x, y, loss=loss)
    rows = [make_row(o, summary, spectra=spectra)
            for o, summary in zip(observations, tensor_summaries(observations))]
    return Diagnosis(rows, [str(f) for f in find_problems(rows, thresholds)], notes, spectra)


def _cell(value, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "x".join(str(n) for n in value) or "()"
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return str(value)
    return format(value, fmt)
