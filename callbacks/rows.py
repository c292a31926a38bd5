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
only).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from callbacks.probe import Observation
import keras

from callbacks.statistics import activation_summary, identical_slices, identical_units, summarize, update_ratio

ROW_KEYS = (
    "layer", "kind", "name", "tag", "shape", "dtype", "activation",
    "count", "nan", "inf", "mean", "std", "min", "max", "norm", "zero_fraction",
    "signal", "dead_fraction", "saturated_fraction", "identical_units", "identical_outgoing",
    "update_ratio",
)


def make_row(observation: Observation, values: np.ndarray, previous: Optional[np.ndarray] = None) -> dict:
    """The statistics row of `observation`, whose value is `values` (NumPy)."""
    entry = observation.entry
    row = dict.fromkeys(ROW_KEYS)
    row.update(
        layer=observation.layer, kind=observation.kind, name=observation.name,
        tag=observation.tag, shape=tuple(values.shape), dtype=str(values.dtype),
        activation=entry.activation,
    )
    row.update(summarize(values))
    if observation.kind == "activation":
        row.update(activation_summary(values, entry.activation))
    elif observation.kind == "weight":
        if observation.name.split("/")[-1] == "kernel":
            row["identical_units"] = identical_units(values, axis=entry.units_axis)
        if observation.name == "kernel" and row["identical_units"] and entry.outgoing is not None:
            row["identical_outgoing"] = all(
                identical_slices(keras.ops.convert_to_numpy(weight), axis) for weight, axis in entry.outgoing)
        if previous is not None:
            row["update_ratio"] = update_ratio(previous, values)
    return row
