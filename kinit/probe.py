"""Measure the pre-activations of chosen layers with one probe built once.

`lsuv` needs, after every rescaling, the standard deviation of each targeted
layer's output *before* its activation. Building a new sub-model per layer
per iteration is the slow, obvious way; `pre_activation_probe` builds one
probe for all targets instead:

* Functional / Sequential models (also nested): the model's graph is
  replayed (`kinit.graph.trace`) with each target's fused activation split
  off into a separate ``Activation`` node, and the probe is one Keras model
  from the inputs to the mean and variance of every target's pre-activation.
  Downstream layers see exactly what they see in the original model. While
  the probe is open, the targets' ``activation`` attributes are linear; they
  are restored when it closes.
* Models without a graph (subclassed models, or targets inside custom
  layers): each target's activation function is wrapped by a recorder that
  takes the moments of its input, and the model itself runs eagerly.

Both run in inference mode (``training=False``: dropout off, batch
normalization on its moving statistics) over the batch in chunks of
`batch_size` rows, so memory stays bounded and the moments are exact over the
whole batch.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, List

import keras
import numpy as np
from keras import ops, tree

from kinit.graph import LayerNode, trace


class Probe:
    """Moments of the targets' pre-activations; `nodes` in execution order."""

    def __init__(self, nodes: List[LayerNode], run: Callable):
        self.nodes = nodes
        self._run = run
        self.passes = 0

    def moments(self, x, batch_size: int) -> np.ndarray:
        """``[[mean, variance], …]`` per target over all rows of `x` (one pass).

        A graph probe takes `x` as a list of arrays in the order of the
        model's inputs (``lsuv`` matches a dict to them by name); a recording
        probe passes `x` to the model as it is.
        """
        rows = len(tree.flatten(x)[0])
        total = np.zeros((len(self.nodes), 2))
        for start in range(0, rows, batch_size):
            chunk = tree.map_structure(lambda a: a[start : start + batch_size], x)
            stats = np.asarray(self._run(chunk), dtype="float64").reshape(len(self.nodes), 2)
            weight = len(tree.flatten(chunk)[0]) / rows
            # Sums of first and second moments combine exactly across chunks.
            total += weight * np.stack([stats[:, 0], stats[:, 1] + stats[:, 0] ** 2], axis=1)
        self.passes += 1
        return np.stack([total[:, 0], total[:, 1] - total[:, 0] ** 2], axis=1)


@contextlib.contextmanager
def pre_activation_probe(model: keras.Model, select: Callable[[LayerNode], bool]) -> Iterator[Probe]:
    """A `Probe` of the layers of `model` whose nodes `select` accepts.

    Each selected layer must have an ``activation`` attribute that its
    ``call`` applies last (Dense, EinsumDense, Conv*, …).
    """
    fused = {}  # id(layer) → (layer, activation)

    def split_call(node, layer, args, kwargs):
        if not select(node):
            return layer(*args, **kwargs)
        if id(layer) not in fused:
            fused[id(layer)] = (layer, layer.activation)
            layer.activation = keras.activations.linear
        pre = layer(*args, **kwargs)
        if all(seen is not node for seen, _ in targets):
            targets.append((node, pre))
        activation = fused[id(layer)][1]
        return pre if _is_linear(activation) else keras.layers.Activation(activation)(pre)

    targets: list = []
    try:
        with trace(model, split_call) as traced:
            selected = [node for node in traced.layers() if select(node)]
            in_graph = bool(traced.inputs) and all(node.in_graph for node in selected)
            if in_graph:  # the probe model must be built while the trace is open
                nodes = [node for node, _ in targets]
                run = _graph_run(traced.inputs, [pre for _, pre in targets])
        if not in_graph:
            _restore(fused)
            nodes = selected
            run = _recording_run(model, nodes, fused)
        yield Probe(nodes, run)
    finally:
        _restore(fused)


def _graph_run(inputs: list, pre_activations: list) -> Callable:
    """One compiled model from the inputs to every target's moments."""
    if not pre_activations:
        return lambda chunk: []
    probe_model = keras.Model(inputs, [_moments(pre) for pre in pre_activations])
    # `chunk` is a list in input order (flattening a dict would sort its keys).
    return lambda chunk: probe_model.predict_on_batch(tree.flatten(chunk))


def _recording_run(model, nodes: List[LayerNode], fused: dict) -> Callable:
    """Run `model` eagerly, recording each target's activation input."""
    sink = {}
    for node in nodes:
        layer = node.layer
        if id(layer) not in fused:
            fused[id(layer)] = (layer, layer.activation)
            layer.activation = _Recorder(layer.activation, sink, node)

    def run(chunk):
        sink.clear()
        model(chunk, training=False)
        missing = [node.path for node in nodes if node not in sink]
        if missing:
            raise ValueError(f"layers {missing} did not run when the model was called.")
        # Walked layers are listed in assignment order; run order is the truth.
        nodes.sort(key=list(sink).index)
        return [sink[node] for node in nodes]

    return run


class _Recorder:
    def __init__(self, activation, sink: dict, node: LayerNode):
        self.activation, self.sink, self.node = activation, sink, node

    def __call__(self, x):
        if self.node not in self.sink:  # a layer called twice is measured at its first call
            self.sink[self.node] = ops.convert_to_numpy(_moments(x))
        return self.activation(x)


def _moments(x):
    x = ops.cast(x, "float32")
    return ops.stack([ops.mean(x), ops.var(x)])


def _is_linear(activation) -> bool:
    return getattr(activation, "__name__", None) == "linear"


def _restore(fused: dict) -> None:
    for layer, activation in fused.values():
        layer.activation = activation
    fused.clear()
