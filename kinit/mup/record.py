"""Where the μP record lives: in the layers' initializers, so Keras saves it.

A Functional or Sequential model's config is its layers' configs, and
`keras.models.clone_model` and `keras.models.load_model` rebuild every layer
from its config. The one place of a built-in layer's config that takes an
arbitrary serializable object per weight is its initializer
(``kernel_initializer``, ``bias_initializer``, ``gamma_initializer``, …). So
`set_base_shapes` wraps each of those initializers in a `BaseShapes`
initializer that *delegates* to the original (the layer draws the same
values as before) and carries the records of the weights it initializes.
The record then travels wherever the layer's config goes: ``model.save()``
/ ``load_model()``, ``clone_model``, ``from_config``.

Which layer holds a weight's record: the outermost layer, from the model
down to the weight's own layer, whose instance attribute
``<weight>_initializer`` (or ``_<weight>_initializer``) is an initializer.
For MultiHeadAttention that is the attention layer itself (its sublayers
are rebuilt from its ``kernel_initializer`` / ``bias_initializer``, which
it clones for each of them); for an LSTM it is the cell (the LSTM's config
reads the cell's initializers). A weight without such an attribute keeps its
record in memory only, and `set_base_shapes` says so.

The optimizers get their variables, not the model. So every layer that
holds records, and every layer whose build calls a `BaseShapes` initializer
(a loaded or cloned model's layers, a cloned MultiHeadAttention's
sublayers), is noted in a weak registry; `records_for` looks a variable up
there.
"""

from __future__ import annotations

import weakref
from typing import Dict, Iterable, List, Optional, Tuple

import keras

from kinit.base import register
from kinit.keras_adapter import building_layer, sublayers
from kinit.mup.roles import ShapeRecord

PACKAGE = "kinit.mup"
REGISTERED_NAME = f"{PACKAGE}>BaseShapes"
#: Attribute under which a layer keeps the records no initializer could hold.
MEMORY_ATTRIBUTE = "_kinit_mup_records"
#: Initializer attributes whose names do not follow ``<weight>_initializer``.
ATTRIBUTE_ALIASES = {
    "recurrent_kernel": "recurrent_initializer",
    "depthwise_kernel": "depthwise_initializer",
    "pointwise_kernel": "pointwise_initializer",
}

_LAYERS: "weakref.WeakSet" = weakref.WeakSet()


@register(package=PACKAGE)
class BaseShapes(keras.initializers.Initializer):
    """An initializer that carries the μP record of the weights it initializes.

    `kinit.mup.set_base_shapes` puts one in place of a layer's initializer;
    you do not normally create it yourself. Calling it calls the wrapped
    initializer, so the layer's values are those it always drew. Its config
    holds the wrapped initializer's config and the records, so they survive
    ``model.save()`` / ``keras.models.load_model()`` and
    ``keras.models.clone_model``.

    Example:

    >>> kinit.mup.set_base_shapes(model, base_model, delta_model)
    >>> model.layers[1].kernel_initializer
    kinit.mup.BaseShapes(GlorotUniform, 1 record)

    Args:
        initializer: the initializer it delegates to (an instance, a name or a
            serialized config).
        records: variable path relative to the holding layer → the
            `ShapeRecord` config (see `kinit.mup.roles.ShapeRecord`).

    Reference:
        microsoft/mup keeps the same information as ``p.infshape`` on each
        PyTorch parameter, which ``torch.save`` drops.
    """

    def __init__(self, initializer, records: dict):
        if isinstance(initializer, BaseShapes):
            initializer = initializer.initializer
        self.initializer = keras.initializers.get(initializer)
        if not isinstance(records, dict) or not all(isinstance(key, str) for key in records):
            raise ValueError(
                "BaseShapes: argument `records` must be a dict from variable paths (str) to "
                f"record configs; received records={records!r}."
            )
        # Parse once: a malformed record fails here, naming the key.
        parsed = {}
        for key, config in records.items():
            try:
                parsed[key] = ShapeRecord.from_config(config)
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"BaseShapes: record {key!r} is malformed ({error}); received {config!r}.") from None
        self.records = parsed

    def __call__(self, shape, dtype=None):
        layer = building_layer()
        if layer is not None:
            _LAYERS.add(layer)
        return self.initializer(shape, dtype=dtype)

    def get_config(self) -> dict:
        return {
            "initializer": keras.initializers.serialize(self.initializer),
            "records": {key: record.to_config() for key, record in self.records.items()},
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        count = len(self.records)
        return f"kinit.mup.BaseShapes({type(self.initializer).__name__}, {count} record{'s' * (count != 1)})"


# --- the layers of a model ------------------------------------------------------


def all_layers(model) -> List:
    """`model` and every layer inside it, outermost first, each once."""
    seen, order, stack = set(), [], [model]
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen or not isinstance(layer, keras.layers.Layer):
            continue
        seen.add(id(layer))
        order.append(layer)
        stack[:0] = sublayers(layer)
    return order


# --- placing and finding records ---------------------------------------------


def holder_of(lineage: List, weight) -> Tuple[Optional[object], Optional[str]]:
    """The layer and attribute that will hold `weight`'s record.

    `lineage` runs from the weight's own layer out to the outermost
    enclosing layer; the outermost that has an initializer attribute for the
    weight wins (its config is the one that rebuilds the inner layers).
    """
    names = [f"{weight.name}_initializer", f"_{weight.name}_initializer"]
    alias = ATTRIBUTE_ALIASES.get(weight.name)
    if alias:
        names += [alias, f"_{alias}"]
    for layer in reversed(lineage):
        attributes = vars(layer)
        for name in names:
            if isinstance(attributes.get(name), keras.initializers.Initializer):
                return layer, name
    return None, None


def relative_path(layer, weight) -> str:
    """`weight`'s path below `layer` (``query/kernel`` below an attention layer)."""
    prefix = f"{layer.path}/" if getattr(layer, "path", None) else None
    if prefix and weight.path.startswith(prefix):
        return weight.path[len(prefix):]
    return weight.name


def strip(model) -> None:
    """Remove every record from `model` (restore the wrapped initializers)."""
    for layer in all_layers(model):
        for name, value in list(vars(layer).items()):
            if isinstance(value, BaseShapes):
                if name == MEMORY_ATTRIBUTE:
                    object.__setattr__(layer, name, None)
                else:
                    setattr(layer, name, value.initializer)


def place(entries: Iterable[Tuple[List, object, ShapeRecord]]) -> List[ShapeRecord]:
    """Store each ``(lineage, weight, record)``; return the records that only
    memory holds (no initializer attribute could take them)."""
    groups: Dict[Tuple[int, str], Tuple[object, str, dict]] = {}
    in_memory = []
    for lineage, weight, record in entries:
        layer, name = holder_of(lineage, weight)
        if layer is None:
            layer, name = lineage[0], MEMORY_ATTRIBUTE
            in_memory.append(record)
        groups.setdefault((id(layer), name), (layer, name, {}))[2][relative_path(layer, weight)] = record.to_config()
    for layer, name, records in groups.values():
        if name == MEMORY_ATTRIBUTE:
            # Not a Keras-tracked attribute and never in a config: memory only.
            object.__setattr__(layer, name, BaseShapes("zeros", records))
        else:
            setattr(layer, name, BaseShapes(getattr(layer, name), records))
        _LAYERS.add(layer)
    return in_memory


def records_of(layers: Iterable) -> Dict[int, Tuple[object, ShapeRecord]]:
    """``id(variable) → (variable, record)`` for the variables of `layers`
    whose records those layers hold (the first holder found wins)."""
    found: Dict[int, Tuple[object, ShapeRecord]] = {}
    for layer in layers:
        carriers = [value for value in vars(layer).values() if isinstance(value, BaseShapes)]
        if not carriers:
            continue
        weights = layer.weights
        for carrier in carriers:
            for key, record in carrier.records.items():
                variable = _find(layer, weights, key)
                if variable is not None and id(variable) not in found:
                    found[id(variable)] = (variable, record)
    return found


def _find(layer, weights, key: str):
    prefix = f"{layer.path}/" if getattr(layer, "path", None) else ""
    exact = [w for w in weights if w.path == prefix + key]
    if exact:
        return exact[0]
    # A clone of the holder's initializer in one of its sublayers (a loaded
    # MultiHeadAttention's ``query``): the key is relative to the holder.
    tail = [w for w in weights if w.path.endswith("/" + key)]
    return tail[0] if len(tail) == 1 else None


def records_for(variables: Iterable) -> Dict[int, ShapeRecord]:
    """``id(variable) → record`` for those of `variables` that have one,
    from the registry of layers that hold or built with records."""
    wanted = {id(v) for v in variables}
    found = records_of(list(_LAYERS))
    return {key: record for key, (_, record) in found.items() if key in wanted}


def persisted_paths(model) -> Optional[set]:
    """The variable paths whose records are in ``model.get_config()``, or None
    if the model has no config (a subclassed model without `get_config`)."""
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, ValueError):
        return None
    paths = set()
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("registered_name") == REGISTERED_NAME:
                records = (item.get("config") or {}).get("records") or {}
                paths.update(record.get("path") for record in records.values())
                continue
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return paths


def remember(layers: Iterable) -> None:
    """Note `layers` in the registry (those that hold records)."""
    for layer in layers:
        if any(isinstance(value, BaseShapes) for value in vars(layer).values()):
            _LAYERS.add(layer)
