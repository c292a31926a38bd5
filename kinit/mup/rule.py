"""μP initialization as a policy of `kinit.initialize(model, policy="mup")`.

The scheme of each variable is the one the ``"auto"`` policy picks (He for
ReLU, Glorot for linear, …), evaluated at the variable's *base* shape and
then scaled by its width multiplier m as μP's Table 3 says:

=================================  ===========================================
role                               initial variance
=================================  ===========================================
input-like weights, vectors        Var(base shape) — independent of width
hidden weights                     Var(base shape) / m  (∝ 1/fan_in)
output weights, plain Dense        Var(base shape) / m² (∝ 1/fan_in²)
output weights, `Readout`          Var(base shape) (the layer's 1/m multiplier
                                   does the rest: Table 8)
output weights by default          0 (``zero_readout=True``)
fixed (no width dimension)         as the ``"auto"`` policy
=================================  ===========================================

This is microsoft/mup's rule for its initializers (``mup/init.py``: "behave
exactly the same as the torch versions when the model shapes are equal to
their base shapes, and scale with width correctly"). With He initialization
the hidden variance 2/base_fan_in ÷ m equals He at the actual fan-in, as
in the standard parametrization; Glorot's differs. The initialization row
of Table 3 is the same for SGD and Adam: only the learning rates differ,
which `kinit.mup.SGD` / `kinit.mup.Adam` apply.
"""

from __future__ import annotations

import keras

from kinit.constant import Zeros
from kinit.fans import fan_for_mode
from kinit.layer_kinds import is_float
from kinit.model_map import LayerRecord, ModelMap
from kinit.policy import Policy, register_policy
from kinit.rules import AutoOptions, Choice, auto_choice
from kinit.validation import check_bool
from kinit.variance import VarianceScaling

OWNER = "MupPolicy"

#: Factor of the base-shape variance by role (m = width multiplier).
FACTOR_TEXT = {"hidden": " ÷ m", "output": " ÷ m²"}


@register_policy("mup")
class MupPolicy(Policy):
    """The μP initialization rule, for ``kinit.initialize(model, policy=...)``.

    ``kinit.initialize(model, policy="mup")`` uses ``MupPolicy()``; pass an
    instance to change `zero_readout` or `zero_query`. The `initialize`
    call's `relu_bias`, `embedding_stddev` and `zero_residual_gamma` apply
    as with every policy. The model needs `kinit.mup.set_base_shapes` first.

    Formula: ``Var(W) = Var_auto(base shape) · f``, with ``f = 1`` for
    input-like weights and vectors, ``1/m`` for hidden weights, ``1/m²`` for
    output weights of a plain Dense, ``1`` for a `kinit.mup.Readout`, where
    ``m`` is the variable's width multiplier (see the module docstring);
    output weights are zeros by default.

    Example:

    >>> kinit.mup.set_base_shapes(model, base_model, delta_model)
    >>> report = kinit.initialize(model, policy="mup", seed=0)
    >>> report[2].reason
    'hidden (matrix-like), width multiplier 16: μP Var = Var(base shape) ÷ m; Dense → ReLU …'
    >>> kinit.initialize(model, policy=kinit.mup.MupPolicy(zero_readout=False), seed=0)

    Args:
        zero_readout: start output-like weights at zero (microsoft/mup's
            ``readout_zero_init``, which its README recommends); True by default.
        zero_query: start the query kernels of MultiHeadAttention layers at
            zero (microsoft/mup's README recommends it: the attention logits
            are then zero, not shrinking with width, at initialization);
            False by default.

    Reference:
        Yang et al. 2022, "Tensor Programs V", arXiv 2203.03466, Tables 3 and
        8; microsoft/mup, ``mup/init.py``, ``MuReadout``.
    """

    def __init__(self, zero_readout: bool = True, zero_query: bool = False):
        self.zero_readout = check_bool(OWNER, "zero_readout", zero_readout)
        self.zero_query = check_bool(OWNER, "zero_query", zero_query)
        self._records = None
        self._options = None

    def prepare(self, model_map: ModelMap, options: AutoOptions, strict: bool = True) -> None:
        """Read the model's base shapes (once per `initialize`)."""
        from kinit.mup.shapes import variable_records

        model = model_map.model
        records = variable_records(model)
        if not records:
            raise ValueError(
                f"initialize(policy='mup'): model {model.name!r} has no μP base shapes. Call "
                "kinit.mup.set_base_shapes(model, base_model, delta_model) first."
            )
        self._records, self._options = records, options

    def choose(self, model_map: ModelMap, layer: LayerRecord, weight, seed: int) -> Choice:
        """The μP scheme of `weight` (owned by the layer of `layer`)."""
        if self._records is None:
            raise ValueError(f"{OWNER}: call prepare() before choose().")
        if not is_float(weight):
            return Choice(None, "unchanged", f"{weight.dtype} weight")
        record = self._records.get(id(weight))
        if record is None:
            raise ValueError(
                f"initialize(policy='mup'): variable {layer.path}/{weight.name} has no μP record; the model "
                "changed after set_base_shapes. Call kinit.mup.set_base_shapes again."
            )
        if self.zero_query and weight.name == "kernel" and _is_query(layer):
            return Choice(Zeros(), "zeros", f"{record.describe()}: attention query starts at zero (zero_query=True)")
        auto = auto_choice(model_map, layer, weight, seed, self._options)
        return mup_choice(auto, record, self.zero_readout, seed)


def _is_query(layer: LayerRecord) -> bool:
    parent = layer.parent.layer if layer.parent is not None else None
    return isinstance(parent, keras.layers.MultiHeadAttention) and layer.layer is parent.query_dense


def mup_choice(auto: Choice, record, zero_readout: bool, seed: int) -> Choice:
    """Scale the ``"auto"`` choice `auto` of a variable by its μP `record`."""
    role, m = record.role, record.width_mult
    described = record.describe()
    if role == "fixed":
        return Choice(auto.initializer, auto.scheme, f"{described}: as in SP; {auto.reason}")
    if role == "output" and zero_readout:
        return Choice(Zeros(), "zeros", f"{described}: μP readout starts at zero (zero_readout=True)")
    initializer = auto.initializer
    if not isinstance(initializer, VarianceScaling):
        if role in ("input", "vector"):
            return Choice(initializer, auto.scheme, f"{described}: width-independent, as in μP; {auto.reason}")
        return Choice(initializer, auto.scheme, f"{described}: kept (not a variance-scaling scheme); {auto.reason}")
    base_variance = initializer.variance(record.full_base_shape)
    factor = {"hidden": 1.0 / m, "output": 1.0 if record.readout else 1.0 / m**2}.get(role, 1.0)
    target = base_variance * factor
    scale = target * fan_for_mode(record.shape, initializer.mode, initializer.kernel_layout)
    scaled = VarianceScaling(scale, initializer.mode, initializer.distribution, initializer.kernel_layout, seed=seed)
    factor_text = "" if (role == "output" and record.readout) else FACTOR_TEXT.get(role, "")
    name = auto.scheme.split(":")[0]
    scheme = f"{name} at base shape {record.full_base_shape}{factor_text}: Var = {target:.4g}"
    if role == "output" and record.readout:
        rule = "Readout: Var(base shape), forward × 1/m (Table 8)"
    else:
        rule = f"μP Var = Var(base shape){factor_text or ' (width-independent)'}"
    return Choice(scaled, scheme, f"{described}: {rule}; {auto.reason}")
