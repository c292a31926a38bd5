"""`set_base_shapes` and `get_base_shapes`: record which dimensions are widths."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List, Optional, Tuple

import keras

from kinit.model_map import map_model, require_built
from kinit.mup import record as store
from kinit.mup.roles import ROLE_NAMES, ShapeRecord, make_record, variable_axes
from kinit.report import Report

OWNER = "set_base_shapes"


@dataclass
class ShapeRow:
    """One variable of a `ShapeReport`.

    Attributes:
        path: the layer's path in the model (``/``-joined names).
        weight: the variable's name (``kernel``, ``bias``, …).
        shape: its shape.
        base_shape: its base shape, None for the finite (non-width) dimensions.
        role: ``input``, ``hidden``, ``output``, ``vector`` or ``fixed``
            (see `kinit.mup.roles`).
        width_mult: the multiplier μP scales it by (see
            `ShapeRecord.width_mult`).
        fan_in_mult: fan-in over the base fan-in.
        fan_out_mult: fan-out over the base fan-out.
        note: how the record was read or kept (e.g. ``Readout: forward
            multiplier 1/16``, ``in memory only``).
    """

    path: str
    weight: str
    shape: Tuple[int, ...]
    base_shape: Tuple[Optional[int], ...]
    role: str
    width_mult: float
    fan_in_mult: float
    fan_out_mult: float
    note: str = ""


class ShapeReport(Report):
    """The μP record of a model, one row per variable, in execution order."""

    columns = ("path", "weight", "shape", "base_shape", "role", "width_mult", "note")

    def by_path(self) -> dict:
        """``"<path>/<weight>"`` → row."""
        return {f"{row.path}/{row.weight}": row for row in self}


def set_base_shapes(model: keras.Model, base_model: keras.Model, delta_model: Optional[keras.Model] = None) -> ShapeReport:
    """Record on `model` which dimension of each variable is a width, and by how much it grew.

    The variables of `model`, `base_model` and `delta_model` (the same
    architecture at other widths) are paired in execution order. A
    dimension is *infinite* (a width) if it differs between `base_model` and
    `delta_model` — or, without `delta_model`, between `base_model` and
    `model`. Each variable then gets a role (input-like, hidden, output-like,
    vector-like, fixed; see `kinit.mup.roles`) and width multipliers
    ``fan / base fan``, which `kinit.initialize(model, policy="mup")` and the
    optimizers `kinit.mup.Adam`, `AdamW` and `SGD` read.

    Formula: for a dimension of size ``n`` in `model` and ``n₀`` in
    `base_model`, the multiplier is ``n / n₀``; a fan's multiplier is the
    product over its infinite axes (``fan_in / base_fan_in``).

    The record lives in the layers' configs (see `kinit.mup.record`): it
    survives ``model.save()`` / ``keras.models.load_model()`` and
    ``keras.models.clone_model``. Calling `set_base_shapes` again replaces
    it. It does not change any weight: call ``kinit.initialize(model,
    policy="mup")`` next (microsoft/mup's `set_base_shapes` also rescales
    the weights; kinit keeps recording and initializing apart).

    It also sets the width multiplier of every `kinit.mup.Readout` (its
    forward multiplier ``1/width_mult``) and the base key size of every
    `kinit.mup.MultiHeadAttention`, and warns about Keras's own
    ``MultiHeadAttention`` layers whose key size is a width (they keep the
    ``1/√d`` attention scale, not μP's ``1/d``).

    Example:

    >>> def mlp(width):
    ...     return keras.Sequential([keras.Input((784,)), keras.layers.Dense(width, activation="relu"),
    ...                              keras.layers.Dense(width, activation="relu"), kinit.mup.Readout(10)])
    >>> model = mlp(1024)
    >>> report = kinit.mup.set_base_shapes(model, mlp(64), mlp(128))
    >>> [row.role for row in report][:3]
    ['input', 'vector', 'hidden']
    >>> report[2].width_mult      # the second Dense's fan-in grew 1024 / 64
    16.0

    Args:
        model: the built model to train.
        base_model: the same architecture at the base width, built (its
            weights are not used). Hyperparameters tuned at the base width
            transfer: there every multiplier is 1 and μP coincides with the
            standard parametrization (up to the readout's zero init).
        delta_model: optional; the same architecture at a width that differs
            from the base in every dimension that should scale. Needed when
            `model` has the base width itself, or when some dimension
            happens to be equal in `model` and `base_model`.

    Returns:
        A `ShapeReport` (path, weight, shape, base_shape, role, width_mult,
        note), also available later from `get_base_shapes(model)`.

    Raises:
        ValueError: if a model is not built, or the three models do not have
            the same variables in the same order (layer class, weight name,
            rank), or a variable grows along an axis that is no fan (a
            kernel size).

    Reference:
        Yang et al. 2022, "Tensor Programs V: Tuning Large Neural Networks via
        Zero-Shot Hyperparameter Transfer", arXiv 2203.03466 (Table 3, Table 8);
        microsoft/mup, ``mup/shape.py`` and ``mup/infshape.py``.
    """
    for name, value in (("model", model), ("base_model", base_model), ("delta_model", delta_model)):
        if value is None and name == "delta_model":
            continue
        if not isinstance(value, keras.Model):
            raise ValueError(f"{OWNER}: argument `{name}` must be a built keras.Model; received {name}={value!r}.")
        require_built(value, OWNER)
    from kinit.mup.layers import MultiHeadAttention, Readout

    entries = _variables(model)
    base = _variables(base_model)
    delta = _variables(delta_model) if delta_model is not None else None
    _check_pairing(entries, base, "base_model")
    if delta is not None:
        _check_pairing(entries, delta, "delta_model")
    placed = []
    for i, (node, weight) in enumerate(entries):
        shape = tuple(weight.shape)
        base_shape = tuple(base[i][1].shape)
        other = tuple(delta[i][1].shape) if delta is not None else shape
        infinite = [b != o for b, o in zip(base_shape, other)]
        record = make_record(weight.path, node.layer, weight.name, shape, base_shape, infinite,
                             readout=isinstance(node.layer, Readout))
        if isinstance(node.layer, Readout) and weight.name == "kernel" and record.role in ("input", "hidden"):
            raise ValueError(
                f"{OWNER}: Readout {node.path!r} has kernel role {record.role!r} (shape {shape}, base "
                f"{record.base_shape}); a Readout maps a width to a fixed number of units. Use a "
                "Dense layer where the units grow with width."
            )
        placed.append((node, weight, record))
    if not any(record.role != "fixed" for _, _, record in placed):
        warnings.warn(
            f"{OWNER}: no dimension of {model.name!r} differs from base_model"
            + (" in delta_model" if delta is not None else "")
            + ": every variable is fixed, which is the standard parametrization. Pass a "
            "delta_model that differs from base_model in every width.",
            stacklevel=2,
        )
    store.strip(model)
    in_memory = store.place((_lineage(node), weight, record) for node, weight, record in placed)
    _configure_layers(placed, Readout, MultiHeadAttention)
    persisted = store.persisted_paths(model) or set()
    lost_paths = {record.path for _, _, record in placed if record.path not in persisted}
    if lost_paths:
        shown = ", ".join(sorted(lost_paths)[:5]) + (", …" if len(lost_paths) > 5 else "")
        why = "no initializer in a saved layer config holds them" if in_memory or persisted else (
            "the model's config has no layer configs (a subclassed model?)")
        warnings.warn(
            f"{OWNER}: the μP record of {len(lost_paths)} variable(s) of {model.name!r} is kept in "
            f"memory only ({why}): {shown}. It works in this process; model.save() / load_model() "
            "and clone_model lose it (call set_base_shapes again on the loaded model).",
            stacklevel=2,
        )
    return _report(placed, lost_paths)


def get_base_shapes(model: keras.Model) -> ShapeReport:
    """The μP record of `model` (set by `set_base_shapes`, possibly before
    ``save`` / ``load_model`` or ``clone_model``); empty if it has none.

    Example:

    >>> restored = keras.models.load_model("model.keras")
    >>> kinit.mup.get_base_shapes(restored).by_path()["dense_1/kernel"].width_mult
    16.0
    """
    require_built(model, "get_base_shapes")
    layers = store.all_layers(model)
    store.remember(layers)
    found = store.records_of(layers)
    placed = [(node, weight, found[id(weight)][1]) for node, weight in _variables(model) if id(weight) in found]
    return _report(placed, set())


def variable_records(model: keras.Model) -> dict:
    """``id(variable) → ShapeRecord`` for the variables of `model` that have one."""
    layers = store.all_layers(model)
    store.remember(layers)
    return {key: record for key, (_, record) in store.records_of(layers).items()}


def _variables(model) -> List[tuple]:
    """``(record, weight)`` for every variable of `model` (a `kinit.model_map`
    record of the layer that owns it), in execution order, once."""
    seen, pairs = set(), []
    for node in map_model(model).records:
        for weight in node.own_weights:
            if id(weight) not in seen:
                seen.add(id(weight))
                pairs.append((node, weight))
    return pairs


def _check_pairing(entries, others, name: str) -> None:
    if len(entries) != len(others):
        raise ValueError(
            f"{OWNER}: `model` has {len(entries)} variables and `{name}` has {len(others)}; "
            f"{name} must be the same architecture at another width."
        )
    for i, ((node, weight), (other_node, other)) in enumerate(zip(entries, others)):
        same = (
            type(node.layer) is type(other_node.layer)
            and weight.name == other.name
            and len(weight.shape) == len(other.shape)
        )
        if not same:
            raise ValueError(
                f"{OWNER}: variable #{i} differs between `model` and `{name}`: "
                f"{node.path}/{weight.name} ({type(node.layer).__name__}, shape {tuple(weight.shape)}) vs "
                f"{other_node.path}/{other.name} ({type(other_node.layer).__name__}, shape "
                f"{tuple(other.shape)}); {name} must be the same architecture at another width."
            )


def _lineage(node) -> list:
    layers = []
    while node is not None:
        if isinstance(node.layer, keras.layers.Layer):
            layers.append(node.layer)
        node = node.parent
    return layers


def _configure_layers(placed, readout_class, attention_class) -> None:
    """Give Readout its multiplier and MultiHeadAttention its base key size;
    warn about Keras's MultiHeadAttention when the key size is a width."""
    warned = set()
    for node, weight, record in placed:
        layer = node.layer
        if isinstance(layer, readout_class) and weight.name == "kernel":
            layer.width_mult = record.fan_in_mult
        owner = node.parent.layer if node.parent is not None else None
        if not isinstance(owner, keras.layers.MultiHeadAttention) or weight.name != "kernel":
            continue
        if layer is not owner.query_dense:
            continue
        key_base = record.base_shape[-1]
        if isinstance(owner, attention_class):
            owner.set_base_key_dim(key_base if key_base is not None else owner.key_dim)
        elif key_base is not None and id(owner) not in warned:
            warned.add(id(owner))
            warnings.warn(
                f"{OWNER}: {node.parent.path!r} is Keras's MultiHeadAttention and its key size "
                f"({owner.key_dim}, base {key_base}) grows with width: it keeps the 1/√d attention "
                "scale, while μP needs 1/d. Use kinit.mup.MultiHeadAttention (same arguments).",
                stacklevel=3,
            )


def _report(placed, lost_paths) -> ShapeReport:
    report = ShapeReport()
    for node, weight, record in placed:
        axes = variable_axes(node.layer, weight.name, len(record.shape))
        notes = [axes.note] if axes.note else []
        if record.readout:
            notes.append(f"Readout: forward multiplier 1/{record.fan_in_mult:g}")
        if record.path in lost_paths:
            notes.append("in memory only")
        report.append(ShapeRow(
            path=node.path, weight=weight.name, shape=record.shape, base_shape=record.base_shape,
            role=record.role, width_mult=record.width_mult, fan_in_mult=record.fan_in_mult,
            fan_out_mult=record.fan_out_mult, note="; ".join(notes),
        ))
    return report


__all__ = ["set_base_shapes", "get_base_shapes", "ShapeReport", "ShapeRow", "ShapeRecord", "ROLE_NAMES"]
