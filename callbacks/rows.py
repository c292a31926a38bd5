"""One statistics row per observed tensor: the table `diagnose` returns and the
callback writes as scalars.

Every row is a `DiagnosticRow` with the same fields (``None`` where a
statistic does not apply), also readable as ``row["std"]``: ``path`` (the
layer's unique path), ``layer_class``, ``kind`` ("weight", "activation",
"gradient"), ``name``, ``tag``, ``shape``, ``dtype``, ``activation`` (the
layer's activation function), the `summarize` numbers (``count``, ``nan``,
``inf``, ``mean``, ``std``, ``min``, ``max``, ``norm``, ``zero_fraction``),
for activations ``signal``, ``dead_fraction`` and ``saturated_fraction``,
for weights ``identical_units`` (kernels only), ``identical_outgoing`` (a
layer's ``kernel`` whose units are identical: whether everything downstream
reads them alike, see `kinit.callbacks.downstream`; None when its output is
a model output or the wiring is not known), ``update_ratio`` (since the
previous look, callback only) and, with spectra asked for, a kernel's (a
weight whose name ends in ``kernel``) ``spectral_norm``, ``stable_rank``
and ``alpha`` (see `kinit.callbacks.spectra`).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, List, Optional

import keras
import numpy as np

from .observe import Observation
from .spectra import eigenvalues, spectral_statistics
from .statistics import activation_summary, identical_slices, identical_units, summarize, update_ratio
from .tensor_spectra import eigenvalues as tensor_eigenvalues
from .tensor_statistics import summarize_tensors


@dataclasses.dataclass
class DiagnosticRow:
    """The statistics of one weight, activation or gradient (see the module
    docstring); ``row[key]`` reads a field as a dict would."""

    path: str
    kind: str
    name: str
    tag: str
    shape: tuple
    dtype: str
    layer_class: str = ""
    activation: Optional[str] = None
    count: Optional[int] = None
    nan: Optional[int] = None
    inf: Optional[int] = None
    mean: Optional[float] = None
    std: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None
    norm: Optional[float] = None
    zero_fraction: Optional[float] = None
    signal: Optional[float] = None
    dead_fraction: Optional[float] = None
    saturated_fraction: Optional[float] = None
    identical_units: Optional[bool] = None
    identical_outgoing: Optional[bool] = None
    update_ratio: Optional[float] = None
    spectral_norm: Optional[float] = None
    stable_rank: Optional[float] = None
    alpha: Optional[float] = None

    def __getitem__(self, key: str):
        if key not in ROW_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default=None):
        return getattr(self, key, default) if key in ROW_KEYS else default

    def keys(self):
        return ROW_KEYS

    def __iter__(self):
        return iter(ROW_KEYS)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


ROW_KEYS = tuple(f.name for f in dataclasses.fields(DiagnosticRow))


def summaries_where_they_live(observations: List[Observation],
                     warn: Callable[[str], None] = logging.getLogger("kinit.callbacks").warning) -> List[Optional[dict]]:
    """The `summarize` (and for activations `activation_summary`) numbers of
    every observation, computed where the tensors live: in one traced call on
    the TensorFlow backend (`kinit.callbacks.tensor_statistics`), in one
    `jax.jit` call on JAX and eagerly on PyTorch
    (`kinit.callbacks.array_statistics`); None for those left to NumPy
    (every one on other backends). If that fails, `warn` is told why and
    NumPy computes every row."""
    items = [(o.tensor, o.kind == "activation", o.entry.activation) for o in observations]
    try:
        if keras.backend.backend() == "tensorflow":
            return summarize_tensors(items)
        if keras.backend.backend() in ("jax", "torch"):
            from .array_statistics import summarize_arrays

            return summarize_arrays(items)
        return [None] * len(observations)
    except Exception as error:  # the rows still come, from NumPy
        warn(f"computing the statistics where the tensors live failed ({type(error).__name__}: "
             f"{error}); NumPy computes them instead.")
        return [None] * len(observations)


def make_row(observation: Observation, summary: Optional[dict] = None,
             previous: Optional[np.ndarray] = None, values: Optional[np.ndarray] = None,
             spectra: bool = False) -> DiagnosticRow:
    """The statistics row of `observation`. `summary`: its `tensor_summaries`
    entry, if any (otherwise NumPy computes the numbers); `previous`: the
    weight's values at the previous look, for the update ratio; `values`:
    the observation's value as NumPy, if the caller has it already;
    `spectra`: whether to add a kernel's `spectra_row`."""
    entry = observation.entry
    value = observation.value
    row = dict.fromkeys(ROW_KEYS)
    row.update(
        path=observation.path, layer_class=entry.layer_class, kind=observation.kind, name=observation.name,
        tag=observation.tag, shape=tuple(value.shape), dtype=keras.backend.standardize_dtype(value.dtype),
        activation=entry.activation,
    )
    # Host values only where a statistic needs them: weights, or what NumPy summarizes.
    if values is None and (summary is None or observation.kind == "weight"):
        values = keras.ops.convert_to_numpy(value)
    if summary is None:
        summary = summarize(values)
        if observation.kind == "activation":
            summary.update(activation_summary(values, entry.activation))
    row.update(summary)
    if observation.kind == "weight":
        if observation.name.split("/")[-1] == "kernel":
            row["identical_units"] = identical_units(values, axis=entry.units_axis)
        if observation.name == "kernel" and row["identical_units"] and entry.outgoing is not None:
            row["identical_outgoing"] = all(
                identical_slices(keras.ops.convert_to_numpy(weight), axis) for weight, axis in entry.outgoing)
        if previous is not None:
            row["update_ratio"] = update_ratio(previous, values)
        if spectra:
            row.update(spectra_row(observation, values))
    return DiagnosticRow(**row)


def spectra_row(observation: Observation, values: np.ndarray) -> dict:
    """`spectral_statistics` of a kernel (a weight whose name ends in
    ``kernel``, read with its units last); {} for any other observation.
    On the TensorFlow backend TensorFlow computes the eigenvalues (see
    `kinit.callbacks.tensor_spectra`)."""
    if observation.kind != "weight" or not observation.name.endswith("kernel"):
        return {}
    solver = tensor_eigenvalues if keras.backend.backend() == "tensorflow" else eigenvalues
    return spectral_statistics(values, observation.entry.units_axis, solver)
