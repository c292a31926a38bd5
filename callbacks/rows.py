"""One statistics row per observed tensor: the table `diagnose` returns and the
callback writes as scalars.

Every row has the same keys (``None`` where a statistic does not apply):
``layer`` (unique path), ``kind`` ("weight", "activation", "gradient"),
``name``, ``tag``, ``shape``, ``dtype``, ``activation`` (the layer's activation
function),
the `summarize` numbers (``count``, ``nan``, ``inf``, ``mean``, ``std``,
``min``, ``max``, ``norm``, ``zero_fraction``), for activations ``signal``,
``dead_fraction`` and ``saturated_fraction``, for weights ``identical_units``
(kernels only), ``identical_outgoing`` (a layer's ``kernel`` whose units are
identical: whether everything downstream reads them alike, see
`callbacks.downstream`; None when its output is a model output or the
wiring is not known) and ``update_ratio`` (since the previous look, callback
only); with spectra asked for, a kernel's (a weight whose name ends in
``kernel``) ``spectral_norm``, ``stable_rank`` and ``alpha`` (see
`callbacks.spectra`).
"""

from __future__ import annotations

import logging
from typing import Callable, List, Optional

import keras
import numpy as np

from callbacks.probe import Observation
from callbacks.spectra import KEYS as SPECTRA_KEYS, eigenvalues, spectral_statistics
from callbacks.tensor_spectra import eigenvalues as tensor_eigenvalues
from callbacks.statistics import activation_summary, identical_slices, identical_units, summarize, update_ratio
from callbacks.tensor_statistics import tensor_summaries as summaries

ROW_KEYS = (
    "layer", "kind", "name", "tag", "shape", "dtype", "activation",
    "count", "nan", "inf", "mean", "std", "min", "max", "norm", "zero_fraction",
    "signal", "dead_fraction", "saturated_fraction", "identical_units", "identical_outgoing",
    "update_ratio", *SPECTRA_KEYS,
)


def tensor_summaries(observations: List[Observation],
                     warn: Callable[[str], None] = logging.getLogger("callbacks").warning) -> List[Optional[dict]]:
    """The `summarize` (and for activations `activation_summary`) numbers of
    every observation, computed where the tensors live in one traced call on
    the TensorFlow backend; None for those left to NumPy (see
    `callbacks.tensor_statistics`; every one on other backends). If that call
    fails, `warn` is told why and NumPy computes every row."""
    if keras.backend.backend() != "tensorflow":
        return [None] * len(observations)
    try:
        return summaries([(o.tensor, o.kind == "activation", o.entry.activation) for o in observations])
    except Exception as error:  # the rows still come, from NumPy
        warn(f"computing the statistics where the tensors live failed ({type(error).__name__}: "
             f"{error}); NumPy computes them instead.")
        return [None] * len(observations)


def make_row(observation: Observation, summary: Optional[dict] = None,
             previous: Optional[np.ndarray] = None, values: Optional[np.ndarray] = None,
             spectra: bool = False) -> dict:
    """The statistics row of `observation`. `summary`: its `tensor_summaries`
    entry, if any (otherwise NumPy computes the numbers); `previous`: the
    weight's values at the previous look, for the update ratio; `values`:
    the observation's value as NumPy, if the caller has it already;
    `spectra`: whether to add a kernel's `spectra_row`."""
    entry = observation.entry
    value = observation.value
    row = dict.fromkeys(ROW_KEYS)
    row.update(
        layer=observation.layer, kind=observation.kind, name=observation.name,
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
    return row


def spectra_row(observation: Observation, values: np.ndarray) -> dict:
    """`spectral_statistics` of a kernel (a weight whose name ends in
    ``kernel``, read with its units last); {} for any other observation.
    On the TensorFlow backend TensorFlow computes the eigenvalues (see
    `callbacks.tensor_spectra`)."""
    if observation.kind != "weight" or not observation.name.endswith("kernel"):
        return {}
    solver = tensor_eigenvalues if keras.backend.backend() == "tensorflow" else eigenvalues
    return spectral_statistics(values, observation.entry.units_axis, solver)
