"""`diagnose(model, x)`: the callback's statistics and findings without training."""

from __future__ import annotations

from typing import List, Optional

import keras
import numpy as np

from kinit.inputs import check_against_model, check_batch_size, read_batch
from kinit.model_map import map_model
from kinit.report import Report, text_table
from kinit.validation import check_bool

from .findings import Thresholds, find_problems
from .layers import discover
from .observe import MAX_PROBE_EXAMPLES, ensure_built, observe
from .rows import DiagnosticRow, make_row, summaries_where_they_live

#: Columns of the printed table: (row key, heading, format).
_COLUMNS = (
    ("path", "path", "s"), ("kind", "kind", "s"), ("name", "name", "s"),
    ("shape", "shape", "s"), ("mean", "mean", ".3g"), ("std", "std", ".3g"),
    ("min", "min", ".3g"), ("max", "max", ".3g"), ("norm", "norm", ".3g"),
    ("signal", "signal", ".3g"), ("zero_fraction", "zero", ".0%"), ("dead_fraction", "dead", ".0%"),
    ("saturated_fraction", "sat", ".0%"), ("nan", "nan", "d"), ("inf", "inf", "d"),
)
#: Columns added by ``spectra=True``.
_SPECTRA_COLUMNS = (("spectral_norm", "sigma_max", ".3g"), ("stable_rank", "stable_rank", ".3g"),
                    ("alpha", "alpha", ".3g"))


class Diagnosis(Report):
    """The result of `diagnose`: one `DiagnosticRow` per weight, activation and
    gradient (a list, like `kinit.initialize`'s and `kinit.lsuv`'s reports),
    plus the findings and notes.

    Attributes:
        findings: plain-language problems; empty when the model looks healthy.
        notes: what could not be observed (e.g. gradients without targets,
            wiring the model map could not trace).
        spectra: whether the kernels' spectral numbers were computed (the
            table then shows them).
    """

    columns = tuple(key for key, _, _ in _COLUMNS)

    def __init__(self, rows: List[DiagnosticRow], findings: List[str], notes: List[str], spectra: bool = False):
        super().__init__(rows)
        self.findings = findings
        self.notes = notes
        self.spectra = spectra
        self._shown = _COLUMNS + (_SPECTRA_COLUMNS if spectra else ())
        self.columns = tuple(key for key, _, _ in self._shown)

    @property
    def rows(self) -> List[DiagnosticRow]:
        """The rows as a plain list."""
        return list(self)

    def cells(self) -> List[List[str]]:
        return [[_cell(row[key], fmt) for key, _, fmt in self._shown] for row in self]

    def __str__(self) -> str:
        lines = [text_table([[heading for _, heading, _ in self._shown]] + self.cells()), ""]
        lines += [f"! {finding}" for finding in self.findings] or ["No problems found."]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Diagnosis({len(self)} rows, {len(self.findings)} findings)"


def diagnose(
    model: keras.Model,
    x,
    y=None,
    *,
    sample_weight=None,
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
    `loss`). The model is run in inference mode and is not changed. The
    layers are found through the model map (`kinit.model_map`), so every
    layer of a subclassed model or custom layer is seen.

    Example:

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, "relu")])
    >>> report = diagnose(model, np.random.rand(64, 8))
    >>> stds = {r.path: r.std for r in report if r.kind == "activation"}
    >>> print(report)  # a table, then the findings

    Args:
        model: a Keras model (built or not).
        x: a batch of 2 to 4096 inputs (multi-input: a list or dict), or a
            dataset / iterable of batches (its first 4096 examples; a dataset
            of ``(x, y[, sample_weight])`` gives the targets too).
        y: targets for the same examples, for gradients.
        sample_weight: weights of the examples in the loss, as in `fit`.
        loss: a loss for the gradients instead of the compiled one.
        layer_filter: a regular expression; only layers whose path matches.
        vanishing_factor, exploding_factor, dead_fraction, saturated_fraction:
            finding thresholds (see `callbacks.findings`).
        spectra: also give each kernel's ``spectral_norm``, ``stable_rank``
            and ``alpha`` (see `kinit.callbacks.spectra`; None in the other rows).

    Reference:
        The same as `InitDiagnostics` (Glorot & Bengio, 2010; Goodfellow,
        Bengio & Courville, 2016, §8.4).
    """
    thresholds = Thresholds.checked(
        "diagnose", vanishing_factor=vanishing_factor, exploding_factor=exploding_factor,
        dead_fraction=dead_fraction, saturated_fraction=saturated_fraction)
    spectra = check_bool("diagnose", "spectra", spectra)
    if y is None and sample_weight is None:
        batch = read_batch("diagnose", x, "x", MAX_PROBE_EXAMPLES)
    else:
        batch = read_batch("diagnose", (x, y, sample_weight), "x", MAX_PROBE_EXAMPLES)
    check_batch_size("diagnose", batch, "x", minimum=2, maximum=MAX_PROBE_EXAMPLES,
                     target_arguments=None if y is None and sample_weight is None else ("y", "sample_weight"))
    ensure_built(model, batch.x)
    check_against_model("diagnose", model, batch.x, "x", y=batch.y)
    model_map = map_model(model, batch.x)
    entries = discover(model_map, layer_filter)
    observations, notes = observe(model_map, entries, batch.x, batch.y, batch.sample_weight, loss=loss)
    rows = [make_row(o, summary, spectra=spectra)
            for o, summary in zip(observations, summaries_where_they_live(observations))]
    return Diagnosis(rows, [str(f) for f in find_problems(rows, thresholds)], notes, spectra)


def _cell(value, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return "x".join(str(n) for n in value) or "()"
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return str(value)
    return format(value, fmt)
