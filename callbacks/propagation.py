"""Signal-propagation plots of residual networks (Brock, De & Smith 2021).

`signal_propagation(model, x)` runs a probe batch through a residual network
as it is now (at initialization, typically) and reports, for every residual
block in the order the blocks run, three numbers of Brock et al.'s Fig. 1:

* ``channel_squared_mean``: the average channel squared mean of the block's
  output, ``mean_c (mean_{batch, positions} x_c)²``;
* ``channel_variance``: its average channel variance,
  ``mean_c var_{batch, positions} x_c``;
* ``residual_variance``: the average channel variance of the residual
  branch's output, the tensor the block adds to its shortcut.

A residual block is a sum of the model map (`kinit.residual.sums`): an
``Add`` layer, or an ``add`` op (``x + f(x)`` in a custom layer) whose
inputs come from layer calls, or from a custom layer's return value (the
previous block's sum, say). The block's output is the sum; its
residual branch is the input whose branch is longer than the shortcut's
(several such inputs: their sum; none, when every input's branch is as long
as the others: None). Channels are the last axis. The sums' inputs are
captured as the model runs (`kinit.capture`), so every kind of model works.

By default the batch runs in training mode, as the first training step sees
it: normalization layers use the batch's statistics (in inference mode a
freshly initialized BatchNormalization divides by its initial moving
variance, 1, and the picture would show an unnormalized network). The model
is left as it was: the variables the run updates (moving statistics, random
generator states) are restored afterwards.

The picture (`SignalPropagation.plot`, `plot_signal_propagation`) needs
matplotlib, imported only when plotting. `InitDiagnostics` logs the same
numbers at step 0 when the model has residual blocks (see
`summary_values`).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import keras
import numpy as np

from kinit.capture import capturing
from kinit.inputs import check_against_model, check_batch_size, read_batch
from kinit.model_map import ModelMap, map_model
from kinit.report import Report
from kinit.residual import Sum, sums

from .observe import MAX_PROBE_EXAMPLES, ensure_built

OWNER = "signal_propagation"
#: The statistics of a block, in the order they are plotted and logged.
STATISTICS = ("channel_squared_mean", "channel_variance", "residual_variance")
TITLES = {
    "channel_squared_mean": "average channel squared mean",
    "channel_variance": "average channel variance",
    "residual_variance": "residual branch variance",
}


@dataclass
class BlockRow:
    """One residual block of a `SignalPropagation` report.

    Attributes:
        block: its position among the blocks, from 1, in run order.
        path: the sum's path in the model map (``stage1_block2_add``, ``block/add``).
        shape: the shape of the block's output on the probe batch.
        channel_squared_mean: ``mean_c (mean_{batch, positions} x_c)²`` of the output.
        channel_variance: ``mean_c var_{batch, positions} x_c`` of the output.
        residual_variance: the same average channel variance of the residual
            branch's output; None when no input of the sum is a residual branch.
        residual_path: the path of the call that produced the residual branch's
            output ("" when there is none).
    """

    block: int
    path: str
    shape: Tuple[int, ...]
    channel_squared_mean: float
    channel_variance: float
    residual_variance: Optional[float]
    residual_path: str = ""


class SignalPropagation(Report):
    """The rows of `signal_propagation`, one per residual block in run order.

    Attributes:
        notes: the sums that could not be measured, and why.
        training: whether the probe ran in training mode.
    """

    columns = ("block", "path", "shape", "channel_squared_mean", "channel_variance", "residual_variance")

    def __init__(self, rows=(), notes=(), training: bool = True):
        super().__init__(rows)
        self.notes = list(notes)
        self.training = training

    @property
    def rows(self) -> List[BlockRow]:
        return list(self)

    def __str__(self) -> str:
        if not self:
            return "\n".join(["No residual blocks found."] + [f"note: {note}" for note in self.notes])
        return "\n".join([super().__str__()] + [f"note: {note}" for note in self.notes])

    def plot(self, path=None, title: Optional[str] = None, label: Optional[str] = None):
        """The three statistics against the block index, as a matplotlib figure;
        saved as a PNG (and closed) when `path` is given, whose path is then
        returned."""
        return plot_signal_propagation({label or "model": self}, path, title)


def signal_propagation(model: keras.Model, x, *, training: bool = True) -> SignalPropagation:
    """Per residual block: average channel squared mean and variance of the
    block's output, and the variance of its residual branch (Brock et al. 2021).

    Example:

    >>> report = signal_propagation(resnet, x_train[:256])
    >>> print(report)        # block, path, shape, the three statistics
    >>> report.plot("spp.png")

    Args:
        model: a Keras model (built or not) with residual blocks; a model
            without any gives an empty report.
        x: a batch of 2 to 4096 inputs (a tuple ``(x, y)`` gives its ``x``),
            or a dataset / iterable of batches (its first 4096 examples).
        training: run the batch in training mode (normalization layers use
            its statistics, dropout is on); the model is restored afterwards.

    Reference:
        Brock, De & Smith 2021, "Characterizing signal propagation to close
        the performance gap in unnormalized ResNets", §3 and Fig. 1.
    """
    batch = read_batch(OWNER, x, "x", MAX_PROBE_EXAMPLES)
    check_batch_size(OWNER, batch, "x", minimum=2, maximum=MAX_PROBE_EXAMPLES)
    ensure_built(model, batch.x)
    check_against_model(OWNER, model, batch.x, "x")
    return measure(map_model(model, batch.x), batch.x, training=training)


def measure(model_map: ModelMap, x, training: bool = True) -> SignalPropagation:
    """`signal_propagation` on a mapped model and a checked batch `x`."""
    plans, notes = _plans(model_map)
    if not plans:
        return SignalPropagation([], notes, training)
    targets, seen = [], set()
    for plan in plans:
        for layer, _ in plan.sources:
            if id(layer) not in seen:
                seen.add(id(layer))
                targets.append((id(layer), layer))
    # An Add layer's inputs; an add op's producers' outputs (a layer may be both).
    summed = {id(plan.call.operation) for plan in plans if plan.call.kind == "layer"}
    producing = {id(layer) for plan in plans if plan.call.kind == "op" for layer, _ in plan.sources}
    with _restored(model_map.model), \
            capturing([(key, layer) for key, layer in targets if key in summed], "input") as received, \
            capturing([(key, layer) for key, layer in targets if key in producing], "output") as returned:
        model_map.model(x, training=training)
    received, returned = _by_layer(received), _by_layer(returned)
    rows = []
    for plan in plans:
        tensors = plan.tensors(received if plan.call.kind == "layer" else returned)
        if tensors is None:
            notes.append(f"the inputs of {plan.call.label} could not be captured on the probe batch (a "
                         "layer holding one of them ran more than once, or returned several tensors); "
                         "it is left out")
            continue
        rows.append(_row(len(rows) + 1, plan, tensors))
    return SignalPropagation(rows, notes, training)


# Which tensors each block needs -------------------------------------------------------------

@dataclass
class _Plan:
    """How to get a sum's inputs: `sources` lists (layer, which input) pairs.

    For an ``Add`` layer, its own call's inputs (``which`` = None); for an
    ``add`` op, the output of each producer's layer call (``which`` = the
    index of that call among the layer's calls)."""

    call: object
    residual: Sum
    sources: List[Tuple[object, Optional[int]]]

    def tensors(self, calls: Dict[int, list]) -> Optional[list]:
        if self.call.kind == "layer":
            layer = self.call.operation
            index = self.call.record.calls.index(self.call) if self.call.record is not None else 0
            found = calls.get(id(layer), [])
            return found[index] if index < len(found) else None
        tensors = []
        for (layer, index), producer in zip(self.sources, self.residual.producers):
            found = calls.get(id(layer), [])
            composite = producer.kind == "op"  # the layer holding it must have run once
            if index >= len(found) or len(found[index]) != 1 or (composite and len(found) != 1):
                return None
            tensors.append(found[index][0])
        return tensors


def _plans(model_map: ModelMap):
    plans, notes = [], []
    for residual in sums(model_map):
        call = residual.call
        if call.kind == "layer":
            plans.append(_Plan(call, residual, [(call.operation, None)]))
            continue
        sources = [_source(producer, call) for producer in residual.producers]
        if all(source is not None for source in sources):
            plans.append(_Plan(call, residual, sources))
        else:
            notes.append(f"{call.label} sums the output of an op that kinit cannot capture; it is left out")
    return plans, notes


def _source(producer, consumer):
    """``(layer, call index)`` whose output is `producer`'s output: its own
    layer call; or, for an op inside a composite layer whose output leaves
    that layer (the consumer runs outside it), the composite layer's call,
    which must return it (checked when the probe runs: one call, one tensor)."""
    if producer.kind == "layer" and producer.record is not None:
        return producer.operation, producer.record.calls.index(producer)
    holder = producer.parent
    if (producer.kind == "op" and holder is not None and holder.parent is not None and holder.composite
            and all(record is not holder for record in consumer.parent.lineage())):
        return holder.layer, 0
    return None


def _by_layer(captures) -> Dict[int, list]:
    """Per layer id, the tensors of each of its calls in order."""
    calls: Dict[int, list] = {}
    for key, tensors in captures:
        calls.setdefault(key, []).append(tensors)
    return calls


def _row(block: int, plan: _Plan, tensors: list) -> BlockRow:
    arrays = [np.asarray(keras.ops.convert_to_numpy(t), dtype="float64") for t in tensors]
    output = sum(arrays[1:], arrays[0])
    squared_mean, variance = channel_moments(output)
    residual_indices = plan.residual.residual()
    residual_variance, residual_path = None, ""
    if residual_indices and len(arrays) == len(plan.residual.producers):
        branch = sum((arrays[i] for i in residual_indices[1:]), arrays[residual_indices[0]])
        residual_variance = channel_moments(branch)[1]
        residual_path = ", ".join(plan.residual.producers[i].path for i in residual_indices)
    return BlockRow(block, plan.call.path, tuple(output.shape), squared_mean, variance, residual_variance,
                    residual_path)


def channel_moments(values: np.ndarray) -> Tuple[float, float]:
    """``(mean_c m_c², mean_c v_c)`` with ``m_c`` and ``v_c`` the mean and
    variance of channel ``c`` (the last axis) over every other axis."""
    flat = np.asarray(values, dtype="float64").reshape(-1, np.shape(values)[-1])
    return float(np.mean(flat.mean(axis=0) ** 2)), float(np.mean(flat.var(axis=0)))


class _restored:
    """Put back the values of the model's non-trainable variables (moving
    statistics, random generator states) that a training-mode run updates."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.saved = [(v, keras.ops.convert_to_numpy(v.value)) for v in self.model.non_trainable_variables]
        return self

    def __exit__(self, *exc):
        for variable, value in self.saved:
            variable.assign(value)
        return False


# The picture ----------------------------------------------------------------------------------

def plot_signal_propagation(reports: Dict[str, SignalPropagation], path=None, title: Optional[str] = None):
    """Brock et al.'s three panels for one or more reports (a line per label):
    a matplotlib `Figure`, or the `path` it was saved to (PNG) when given.

    Zeros (a Fixup branch at initialization) stay on the picture: the y axes
    are logarithmic down to a linear stretch around 0. The figure is made
    without pyplot, so plotting never changes matplotlib's backend or
    opens a window.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator

    figure = Figure(figsize=(5.2 * len(STATISTICS), 4.2))
    axes = figure.subplots(1, len(STATISTICS))
    for axis, statistic in zip(axes, STATISTICS):
        values = []
        for label, report in reports.items():
            points = [(row.block, getattr(row, statistic)) for row in report
                      if getattr(row, statistic) is not None]
            if points:
                blocks, numbers = zip(*points)
                axis.plot(blocks, numbers, marker=".", label=label)
                values += numbers
        positive = [v for v in values if v > 0]
        if positive and len(positive) < len(values):
            axis.set_yscale("symlog", linthresh=min(positive))
            # 0, then the powers of ten above the linear stretch (its own ticks would crowd 0).
            powers = range(math.ceil(math.log10(min(positive))), math.floor(math.log10(max(positive))) + 1)
            axis.yaxis.set_major_locator(FixedLocator([0.0] + [10.0**power for power in powers]))
        elif positive:
            axis.set_yscale("log")
        axis.set(title=TITLES[statistic], xlabel="residual block", ylabel=statistic.replace("_", " "))
        axis.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize="small")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is None:
        return figure
    figure.savefig(path, dpi=110)
    return path


# TensorBoard ----------------------------------------------------------------------------------

#: Tags the callback writes at step 0: ``signal_propagation/<statistic>/block_<i>``
#: scalars, the table as text and the picture as an image.
TEXT_TAG = "signal_propagation/table"
IMAGE_TAG = "signal_propagation/plot"


def scalar_tags(report: SignalPropagation) -> List[Tuple[str, float]]:
    """``(tag, value)`` of every statistic of every block; block numbers are
    zero-padded so that TensorBoard sorts them in order."""
    width = len(str(len(report)))
    return [(f"signal_propagation/{statistic}/block_{row.block:0{width}d}", getattr(row, statistic))
            for row in report for statistic in STATISTICS if getattr(row, statistic) is not None]


def summary_values(model_map: ModelMap, x, training: bool = True, image: bool = True) -> list:
    """The TensorBoard summary values of the signal propagation of a mapped
    model on `x` (nothing when it has no residual blocks): the scalars, the
    table (with each block's path) as text, and the picture when matplotlib
    is installed."""
    from .writer import scalar_value, text_value

    report = measure(model_map, x, training=training)
    if not report:
        return []
    values = [scalar_value(tag, value) for tag, value in scalar_tags(report)]
    values.append(text_value(TEXT_TAG, report.to_markdown()))
    if image:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return values
        values.append(_image_value(IMAGE_TAG, report))
    return values


def _image_value(tag: str, report: SignalPropagation):
    """The picture as the image plugin's summary value (a PNG)."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.image import metadata as image_metadata
    from tensorboard.util import tensor_util

    figure = plot_signal_propagation({"model": report}, None, "Signal propagation at initialization")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    width, height = (int(round(n)) for n in figure.get_size_inches() * 80)
    tensor = tensor_util.make_tensor_proto([str(width).encode(), str(height).encode(), buffer.getvalue()])
    metadata = image_metadata.create_summary_metadata(display_name=None, description=None)
    return summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor)
