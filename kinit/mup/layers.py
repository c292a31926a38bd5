"""μP's two forward multipliers as Keras layers: the readout and attention."""

from __future__ import annotations

import math
from typing import Optional

import keras
from keras import ops

from kinit.base import register
from kinit.validation import check_int, check_number

PACKAGE = "kinit.mup"


def default_name(kwargs: dict, prefix: str) -> dict:
    """`kwargs` with a unique ``name`` from `prefix` if none was given.

    Keras names a layer after its class; the registered classes are called
    ``kinit.mup.Readout``, which would give ``kinitmup_readout``. This uses
    Keras's own counters (`keras.backend.get_uid`), so the names continue
    ``readout``, ``readout_1``, … as Keras's would.
    """
    if kwargs.get("name") is None:
        uid = keras.backend.get_uid(prefix)
        kwargs = dict(kwargs, name=prefix if uid == 1 else f"{prefix}_{uid - 1}")
    return kwargs


@register(package=PACKAGE)
class Readout(keras.layers.Dense):
    """A Dense output layer with μP's output multiplier ``1 / width_mult``.

    Drop-in for the layer that maps a width to a fixed number of outputs
    (logits, a regression target). It computes

        ``output = activation(((output_multiplier / width_mult) · x) · W + b)``

    where ``width_mult = fan_in / base_fan_in`` is recorded by
    `kinit.mup.set_base_shapes` (1 until then, as at the base width). With
    this multiplier the readout follows the paper's Table 8: its initial
    variance and its Adam learning rate do not change with width (and
    `kinit.initialize(model, policy="mup")` starts it at zero). A plain Dense
    readout is handled too (Table 3: variance and Adam learning rate ÷
    width_mult²  and ÷ width_mult); both give the same training dynamics.

    Examples:

    >>> layer = kinit.mup.Readout(10)                # instead of keras.layers.Dense(10)
    >>> model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(1024, activation="relu"), layer])
    >>> kinit.mup.set_base_shapes(model, base_model)  # base width 64 → layer.width_mult == 16.0

    Args:
        units: number of outputs (a fixed size, not a width).
        output_multiplier: a constant tuned like any hyperparameter at the
            base width (microsoft/mup's ``output_mult``); > 0, default 1.
        width_mult: the fan-in's width multiplier; None (the default) until
            `set_base_shapes` records it. Saved in the config.
        **kwargs: the arguments of `keras.layers.Dense`.

    Reference:
        Yang et al. 2022, "Tensor Programs V", arXiv 2203.03466, Table 8;
        microsoft/mup ``MuReadout``.
    """

    def __init__(self, units, output_multiplier: float = 1.0, width_mult: Optional[float] = None, **kwargs):
        owner = "Readout"
        super().__init__(check_int(owner, "units", units, minimum=1), **default_name(kwargs, "readout"))
        self.output_multiplier = check_number(owner, "output_multiplier", output_multiplier, minimum=0.0)
        self.width_mult = check_number(owner, "width_mult", width_mult, minimum=0.0, allow_none=True)

    @property
    def input_scale(self) -> float:
        """The factor applied to the input: ``output_multiplier / width_mult``."""
        return self.output_multiplier / (self.width_mult or 1.0)

    def call(self, inputs, training=None):
        return super().call(ops.multiply(inputs, ops.cast(self.input_scale, inputs.dtype)), training=training)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(output_multiplier=self.output_multiplier, width_mult=self.width_mult)
        return config


@register(package=PACKAGE)
class MultiHeadAttention(keras.layers.MultiHeadAttention):
    """Keras's MultiHeadAttention with μP's ``1/d`` attention-logit scale.

    Standard attention divides the logits ``q·k`` by ``√d`` (d = `key_dim`).
    With μP, q and k become correlated during training and ``q·k`` grows
    like d, so the scale must be ``1/d`` for the logits to stay the same
    size when d grows. This layer computes

        ``logits = attention_multiplier · (q · k) / key_dim``

    with ``attention_multiplier = √base_key_dim`` by default: at the base
    width the layer equals Keras's (``1/√d``), and when `key_dim` grows the
    scale falls like ``1/d``. `kinit.mup.set_base_shapes` records
    `base_key_dim` (the key size in the base model; `key_dim` itself until
    then, or when the key size does not scale, e.g. only the number of heads
    grows). Everything else is Keras's layer.

    Examples:

    >>> attention = kinit.mup.MultiHeadAttention(num_heads=4, key_dim=64)
    >>> y = attention(x, x)
    >>> kinit.mup.MultiHeadAttention(4, 64, attention_multiplier=8.0)  # microsoft/mup's 8/d

    Args:
        num_heads, key_dim, …: as `keras.layers.MultiHeadAttention`.
        attention_multiplier: None (√base_key_dim) or a constant c > 0 for
            logits ``c · q·k / key_dim`` (microsoft/mup suggests 8, which
            equals 1/√d at d = 64).
        base_key_dim: the key size at the base width (set by
            `set_base_shapes`; None means `key_dim`).

    Reference:
        Yang et al. 2022, "Tensor Programs V", arXiv 2203.03466, Definition
        4.1 (attention logits scaled by 1/d); microsoft/mup README.
    """

    def __init__(self, num_heads, key_dim, *args, attention_multiplier: Optional[float] = None,
                 base_key_dim: Optional[int] = None, **kwargs):
        super().__init__(num_heads, key_dim, *args, **default_name(kwargs, "multi_head_attention"))
        owner = "MultiHeadAttention"
        self.attention_multiplier = check_number(
            owner, "attention_multiplier", attention_multiplier, minimum=0.0, allow_none=True
        )
        self.base_key_dim = None if base_key_dim is None else check_int(owner, "base_key_dim", base_key_dim, minimum=1)
        self._apply_scale()

    @property
    def attention_scale(self) -> float:
        """The factor of the logits ``q·k``."""
        multiplier = self.attention_multiplier
        if multiplier is None:
            multiplier = math.sqrt(self.base_key_dim or self.key_dim)
        return multiplier / self.key_dim

    def set_base_key_dim(self, base_key_dim: int) -> None:
        """Record the key size of the base model (`set_base_shapes` calls this)."""
        self.base_key_dim = check_int("MultiHeadAttention", "base_key_dim", base_key_dim, minimum=1)
        self._apply_scale()

    def _apply_scale(self) -> None:
        # Keras's layer multiplies the query by this attribute in every
        # attention path (plain, dot_product_attention, flash); a test checks
        # the logits against the formula, so a rename in Keras fails loudly.
        self._inverse_sqrt_key_dim = self.attention_scale

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(attention_multiplier=self.attention_multiplier, base_key_dim=self.base_key_dim)
        return config
