"""The layers of a built Keras model as one flat graph, in execution order.

`initialize` needs "the layer that follows this one" and `lsuv` needs the
layers in topological order and a probe that reads their outputs. Both come
from `trace(model)`, which replays the model's graph on fresh symbolic inputs:

* Functional and Sequential models (also nested in one another) are replayed
  node by node, so nested models are flattened: a Dense layer at the end of
  an inner model is followed by the Activation layer that the outer model
  applies to the inner model's output. A layer called twice is one node
  whose producers and consumers are those of all its calls.
* Layers without a graph of their own — subclassed models, custom layers
  that hold sublayers, RNN layers and wrappers — are walked: their sublayers
  become nodes after the layer itself. A subclassed model being traced is
  the first node (path: its name), so the weights it creates itself are
  found too; its sublayers' paths start below it. Inside a subclassed model or custom
  layer the sublayers are assumed to run in the order they were assigned
  (each one's consumer is the next one, the last one's consumers are those
  of the enclosing layer); inside wrappers (`Bidirectional`, `TimeDistributed`)
  and RNN layers they run in parallel and share the wrapper's consumers.

The replay creates symbolic calls; `trace` removes their bookkeeping from
the model's layers afterwards, so the model is left exactly as it was.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional

import keras
from keras import tree

#: Hook that performs one call of a layer during the replay (see `trace`).
CallHook = Callable[["LayerNode", object, tuple, dict], object]


@dataclass(eq=False)
class LayerNode:
    """One layer (or graph operation) of a traced model.

    Attributes:
        path: ``/``-joined names from the model down to the layer.
        layer: the layer or operation.
        inputs: the nodes whose outputs this one consumes (model inputs are
            nodes too, with ``is_input=True``).
        outputs: the nodes that consume this one's outputs.
        in_graph: True if the node was reached by replaying a graph (its
            output is a symbolic tensor); False if it was found by walking the
            sublayers of a layer without a graph.
        parent: the node of the enclosing layer without a graph, if any.
        is_input: True for the model's input nodes.
    """

    path: str
    layer: object
    inputs: List["LayerNode"] = field(default_factory=list)
    outputs: List["LayerNode"] = field(default_factory=list)
    in_graph: bool = True
    parent: Optional["LayerNode"] = None
    is_input: bool = False

    def __repr__(self) -> str:
        return f"LayerNode({self.path!r}, {type(self.layer).__name__})"


@dataclass
class Trace:
    """The flat graph of a model: `nodes` in execution order (inputs first)."""

    nodes: List[LayerNode]
    inputs: list

    def layers(self) -> Iterator[LayerNode]:
        """The non-input nodes, in execution order."""
        return (node for node in self.nodes if not node.is_input)


@contextlib.contextmanager
def trace(model: keras.Model, call: Optional[CallHook] = None) -> Iterator[Trace]:
    """Flatten the built `model` into a `Trace` (a context manager).

    `call(node, layer, args, kwargs)` performs each symbolic call of a layer
    during the replay and returns its outputs; the default is
    ``layer(*args, **kwargs)``. `lsuv` uses it to split fused activations
    off the layers it measures. Inside the ``with`` block the trace's
    symbolic `inputs` and the tensors the hook sees can be used to build a
    probe model; on
    leaving it, the replay's records are removed from the model's layers
    (a probe built inside keeps working).

    Example:

    >>> with trace(model) as t:
    ...     order = [node.path for node in t.layers()]
    """
    require_built(model, "trace")
    builder = _Builder(call or (lambda node, layer, args, kwargs: layer(*args, **kwargs)))
    with _restoring_nodes(model):
        graph = graph_of(model)
        if graph is None:
            root = LayerNode(path="", layer=model, in_graph=False)
            builder.walk(root)
            builder.link_walked()
            for node in builder.nodes:
                if node.parent is root:
                    node.parent = None
            # The model itself is a node too (named by the model), for the
            # weights it creates itself; its sublayers' paths do not repeat it.
            root.path = model.name
            yield Trace(nodes=[root] + builder.nodes, inputs=[])
            return
        inputs = [
            keras.Input(batch_shape=ref.shape, dtype=ref.dtype, sparse=ref.sparse, name=ref.name)
            for ref in graph.inputs
        ]
        for ref, tensor in zip(graph.inputs, inputs):
            node = builder.add(LayerNode(path=ref.name, layer=ref._keras_history.operation, is_input=True))
            builder.producers[id(tensor)] = node
        builder.replay(graph, inputs, prefix="")
        builder.link_walked()
        yield Trace(nodes=builder.nodes, inputs=inputs)


def graph_of(layer) -> Optional[keras.Model]:
    """The Functional graph that runs `layer`, or None if it has none."""
    if isinstance(layer, keras.Sequential):
        return layer._functional
    if isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph") and hasattr(
        layer, "_nodes_by_depth"
    ):
        return layer
    return None


def require_built(model, owner: str) -> None:
    if not isinstance(model, keras.layers.Layer):
        raise ValueError(f"{owner}: expected a Keras model; received {type(model).__name__}.")
    if not model.built or (isinstance(model, keras.Sequential) and model._functional is None):
        raise ValueError(
            f"{owner}: model {model.name!r} is not built. Build it first, e.g. by "
            "giving it an `Input`, calling `model.build(input_shape)` or calling it on data."
        )


def sublayers(layer) -> list:
    """The direct sublayers of `layer`, in the order they were assigned."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


def own_weights(layer) -> list:
    """The weights that `layer` creates itself (not those of its sublayers)."""
    if not isinstance(layer, keras.layers.Layer):
        return []
    inner = {id(w) for sub in sublayers(layer) for w in sub.weights}
    return [w for w in layer.weights if id(w) not in inner]


def is_float(weight) -> bool:
    """Whether `weight` holds floats (re-initializing integer counters makes no sense)."""
    return "float" in str(weight.dtype)


class _Builder:
    def __init__(self, call: CallHook):
        self.call = call
        self.nodes: List[LayerNode] = []
        self.by_layer: Dict[int, LayerNode] = {}
        self.producers: Dict[int, LayerNode] = {}
        self.families: List[tuple] = []

    def add(self, node: LayerNode) -> LayerNode:
        self.nodes.append(node)
        self.by_layer[id(node.layer)] = node
        return node

    def replay(self, graph, inputs, prefix: str):
        def operation_fn(operation):
            nested = graph_of(operation)
            path = prefix + operation.name
            if nested is not None:
                return lambda *args, **kwargs: self.replay(nested, args[0], path + "/")
            return lambda *args, **kwargs: self.call_layer(operation, path, args, kwargs)

        return graph._run_through_graph(inputs, operation_fn=operation_fn)

    def call_layer(self, layer, path: str, args: tuple, kwargs: dict):
        node = self.by_layer.get(id(layer))
        first_call = node is None
        if first_call:
            node = self.add(LayerNode(path=path, layer=layer))
        for tensor in tree.flatten((args, kwargs)):
            producer = self.producers.get(id(tensor))
            if producer is not None and producer not in node.inputs:
                node.inputs.append(producer)
                producer.outputs.append(node)
        outputs = self.call(node, layer, args, kwargs)
        for tensor in tree.flatten(outputs):
            self.producers[id(tensor)] = node
        if first_call and isinstance(layer, keras.layers.Layer):
            self.walk(node)
        return outputs

    def walk(self, parent: LayerNode) -> None:
        """Add the sublayers of `parent`, a layer without a graph, as nodes."""
        prefix = f"{parent.path}/" if parent.path else ""
        children = [
            self.add(LayerNode(path=prefix + layer.name, layer=layer, in_graph=False, parent=parent))
            for layer in sublayers(parent.layer)
            if not isinstance(layer, keras.layers.InputLayer)
        ]
        self.families.append((parent, children))
        for child in children:
            self.walk(child)

    def link_walked(self) -> None:
        """Connect walked sublayers once their parents' consumers are known."""
        for parent, children in self.families:  # parents come before their children
            if _runs_sublayers_in_parallel(parent.layer):
                for child in children:
                    child.inputs, child.outputs = list(parent.inputs), list(parent.outputs)
                continue
            for before, after in zip(children, children[1:]):
                before.outputs, after.inputs = [after], [before]
            if children:
                children[0].inputs = list(parent.inputs)
                children[-1].outputs = list(parent.outputs)


def _runs_sublayers_in_parallel(layer) -> bool:
    return isinstance(layer, (keras.layers.Wrapper, keras.layers.Bidirectional, keras.layers.RNN))


@contextlib.contextmanager
def _restoring_nodes(model):
    """Undo the inbound/outbound node records that symbolic replays add."""
    operations = list(model._flatten_layers(include_self=True, recursive=True))
    for layer in list(operations):
        graph = graph_of(layer)
        if graph is not None:
            operations.extend(graph.operations)
    saved = {id(op): (op, len(op._inbound_nodes), len(op._outbound_nodes)) for op in operations}
    try:
        yield
    finally:
        for op, inbound, outbound in saved.values():
            del op._inbound_nodes[inbound:]
            del op._outbound_nodes[outbound:]
