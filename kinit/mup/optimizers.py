"""Keras optimizers with μP's per-variable learning rates.

Keras 3 optimizers update each variable in ``update_step(gradient,
variable, learning_rate)`` (on TensorFlow inside the distribution
strategy's update, on JAX inside ``stateless_apply``, on PyTorch in the
base optimizer's loop, which subclasses use). The classes here multiply
`learning_rate` there by a factor fixed per variable when the optimizer is
built, read from the variable's μP record (`kinit.mup.set_base_shapes`):

===========================  ================  ==================
role (m: width multiplier)   Adam, AdamW       SGD
===========================  ================  ==================
input-like, vector-like      1                 m (fan-out)
hidden                       1 / m (fan-in)    m_out / m_in
output, plain Dense          1 / m             1 / m
output, `Readout`            1                 m
fixed                        1                 1
===========================  ================  ==================

These are the Adam and SGD rows of the paper's Table 3 (Table 8 for a
`Readout`, whose forward multiplier 1/m already scales its updates), and
what microsoft/mup's ``MuAdam`` / ``MuSGD`` do with their parameter groups.

Weight decay: Keras decays every variable by ``lr · weight_decay`` per step,
with the global learning rate. microsoft/mup by default scales each
parameter's weight decay by the inverse of its learning-rate factor, so its
decay per step is also ``lr · weight_decay``: the default here
(``decoupled_weight_decay=False``) therefore keeps Keras's decay.
``decoupled_weight_decay=True`` (microsoft/mup's ``decoupled_wd=True``)
decays by ``lr · factor · weight_decay`` instead.
"""

from __future__ import annotations

from typing import Dict

import keras
from keras import ops

from kinit.base import register
from kinit.validation import check_bool

PACKAGE = "kinit.mup"


def learning_rate_factor(record, optimizer: str) -> float:
    """The μP factor of the learning rate of a variable with `record`,
    for an ``"adam"``-like or ``"sgd"``-like optimizer."""
    role = record.role
    if optimizer == "adam":
        if role == "hidden" or (role == "output" and not record.readout):
            return 1.0 / record.fan_in_mult
        return 1.0
    if role in ("input", "vector"):
        return record.fan_out_mult
    if role == "hidden":
        return record.fan_out_mult / record.fan_in_mult
    if role == "output":
        return record.fan_in_mult if record.readout else 1.0 / record.fan_in_mult
    return 1.0


class MupScaling:
    """Mixin of the μP optimizers: per-variable learning-rate factors."""

    #: ``"adam"`` (entrywise-normalized updates) or ``"sgd"``.
    family = "adam"

    def __init__(self, *args, decoupled_weight_decay: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.decoupled_weight_decay = check_bool(type(self).__name__, "decoupled_weight_decay", decoupled_weight_decay)
        self._mup_factors = ()

    def build(self, variables):
        from kinit.mup.record import records_for

        records = records_for(variables)
        missing = [v.path for v in variables if id(v) not in records]
        if missing:
            shown = ", ".join(missing[:5]) + (", …" if len(missing) > 5 else "")
            raise ValueError(
                f"{type(self).__name__}: {len(missing)} of {len(variables)} variables have no μP base "
                f"shapes ({shown}). Call kinit.mup.set_base_shapes(model, base_model, delta_model) "
                "before compiling; for a model loaded or cloned from one that had them, "
                "kinit.mup.get_base_shapes(model) finds them again."
            )
        factors = tuple(learning_rate_factor(records[id(v)], self.family) for v in variables)
        super().build(variables)
        self._mup_factors = factors

    @property
    def learning_rate_factors(self) -> Dict[str, float]:
        """Variable path → its learning-rate factor (after `build`)."""
        return {v.path: f for v, f in zip(self._trainable_variables, self._mup_factors)}

    def update_step(self, gradient, variable, learning_rate):
        factor = self._mup_factors[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = ops.multiply(learning_rate, factor)
        return super().update_step(gradient, variable, learning_rate)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or not self.decoupled_weight_decay:
            return super()._apply_weight_decay(variables)
        for variable in variables:
            if self._use_weight_decay(variable):
                factor = self._mup_factors[self._get_variable_index(variable)]
                lr = ops.cast(self.learning_rate, variable.dtype)
                decay = ops.cast(self.weight_decay * factor, variable.dtype)
                variable.assign(variable - variable * decay * lr)

    def get_config(self) -> dict:
        config = super().get_config()
        config["decoupled_weight_decay"] = self.decoupled_weight_decay
        return config


_DOC = """{keras} with μP's per-variable learning rates.

    Drop-in for `keras.optimizers.{keras}` (same arguments, plus
    `decoupled_weight_decay`) for a model that has μP base shapes
    (`kinit.mup.set_base_shapes`). Each variable's learning rate is
    ``learning_rate · factor`` with the factor of the {family} column of the
    table in `kinit.mup.optimizers`: {summary}

    Example:

    >>> kinit.mup.set_base_shapes(model, base_model, delta_model)
    >>> kinit.initialize(model, policy="mup")
    >>> model.compile(optimizer=kinit.mup.{name}(learning_rate={lr}), loss="sparse_categorical_crossentropy")
    >>> model.fit(x, y)   # the best learning_rate of the base width is (about) the best here too

    Args:
        decoupled_weight_decay: False (default): every variable decays by
            ``learning_rate · weight_decay`` per step, as in Keras and
            microsoft/mup's default. True: by ``learning_rate · factor ·
            weight_decay`` (microsoft/mup's ``decoupled_wd=True``).
        **kwargs: the arguments of `keras.optimizers.{keras}`.

    Raises:
        ValueError: when built (on the first training step) for variables
            without μP base shapes, naming them.

    Reference:
        Yang et al. 2022, "Tensor Programs V", arXiv 2203.03466, Tables 3 and
        8; microsoft/mup, ``mup/optim.py`` ({mup}).
    """

_ADAM_SUMMARY = ("hidden weights ``1/m``, output weights of a plain Dense ``1/m``, everything else "
                 "(input-like, vectors, a `Readout`'s kernel) 1, m being the fan-in's width multiplier.")
_SGD_SUMMARY = ("input-like weights and vectors ``m`` (fan-out), hidden weights ``m_out/m_in``, a "
                "`Readout`'s kernel ``m``, a plain Dense readout ``1/m``, fixed variables 1.")


@register(package=PACKAGE)
class Adam(MupScaling, keras.optimizers.Adam):
    __doc__ = _DOC.format(keras="Adam", family="Adam", summary=_ADAM_SUMMARY, name="Adam", lr="1e-3", mup="MuAdam")
    family = "adam"


@register(package=PACKAGE)
class AdamW(MupScaling, keras.optimizers.AdamW):
    __doc__ = _DOC.format(keras="AdamW", family="Adam", summary=_ADAM_SUMMARY, name="AdamW", lr="1e-3", mup="MuAdamW")
    family = "adam"


@register(package=PACKAGE)
class SGD(MupScaling, keras.optimizers.SGD):
    __doc__ = _DOC.format(keras="SGD", family="SGD", summary=_SGD_SUMMARY, name="SGD", lr="0.1", mup="MuSGD")
    family = "sgd"
