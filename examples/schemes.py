"""The initialization schemes the examples compare, by name.

A scheme is a kernel initializer per layer, optionally followed by a
model-level step (kinit's ``auto`` policy, LSUV) once the model is built.
Schemes that need a kinit name this version lacks are skipped with a notice,
so the examples run on any version of the package.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import keras

import kinit
from kinit.nonlinearity import activation_nonlinearity


@dataclasses.dataclass(frozen=True)
class Scheme:
    """One way to initialize a model.

    Attributes:
        name: the command-line name.
        label: the human name (as in the FashionMNIST article where it has one).
        kernel_initializer: activation name -> initializer for that layer's kernel.
        reinitialize: optional ``(model, x, seed)`` step run on the built model.
        requires: kinit names the scheme needs.
    """

    name: str
    label: str
    kernel_initializer: Callable[[Optional[str]], Any]
    reinitialize: Optional[Callable[[Any, Any, int], Any]] = None
    requires: tuple[str, ...] = ()

    def missing(self) -> list[str]:
        return [name for name in self.requires if not hasattr(kinit, name)]


def activation_gain(activation: Optional[str]) -> float:
    """`kinit.calculate_gain` of a Keras `activation` (with Keras's defaults,
    e.g. leaky_relu's slope 0.2); a softmax output layer counts as linear."""
    nonlinearity = activation_nonlinearity(keras.activations.get(activation), "")
    name = "linear" if nonlinearity.name == "softmax" else nonlinearity.name
    return kinit.calculate_gain(name, nonlinearity.param)


def keras_default(_activation: Optional[str]) -> str:
    return "glorot_uniform"


def orthogonal(activation: Optional[str]):
    return kinit.Orthogonal(gain=activation_gain(activation))


def auto_policy(model, _x, seed: int):
    return kinit.initialize(model, policy="auto", seed=seed)


def lsuv(model, x, seed: int):
    return kinit.lsuv(model, x, seed=seed)


ORTHOGONAL = Scheme("orthogonal", "orthogonal (gain of the activation)", orthogonal, requires=("Orthogonal",))
AUTO = Scheme("auto", "kinit auto policy", keras_default, auto_policy, requires=("initialize",))

#: The FashionMNIST comparison: the article's five schemes and the Keras
#: default, then kinit's He normal, orthogonal, auto policy and LSUV.
COMPARISON = (
    Scheme("zeros", "all zeros", lambda _: kinit.Zeros()),
    Scheme("ones", "all ones", lambda _: kinit.Ones()),
    Scheme("uniform", "uniform [0, 1]", lambda _: kinit.RandomUniform(0.0, 1.0)),
    Scheme("uniform_fan_in", "uniform ±1/√fan_in", lambda _: kinit.FanInUniform()),
    Scheme("normal_fan_in", "normal σ = 1/√fan_in", lambda _: kinit.FanInNormal()),
    Scheme("keras_default", "Keras default (glorot_uniform)", keras_default),
    Scheme("he_normal", "He normal", lambda _: kinit.HeNormal()),
    ORTHOGONAL,
    AUTO,
    Scheme("lsuv", "LSUV", keras_default, lsuv, requires=("lsuv",)),
)

#: The signal-propagation picture (Glorot & Bengio 2010, He et al. 2015).
SIGNAL = (
    Scheme("random_normal", "RandomNormal(0.01)", lambda _: kinit.RandomNormal(stddev=0.01)),
    Scheme("scaled_normal", "ScaledNormal(1.0)", lambda _: kinit.ScaledNormal(1.0)),
    Scheme("lecun", "LeCun normal", lambda _: kinit.LecunNormal()),
    Scheme("glorot", "Glorot normal", lambda _: kinit.GlorotNormal()),
    Scheme("he", "He normal", lambda _: kinit.HeNormal()),
    ORTHOGONAL,
    AUTO,
)


def select(registry: Sequence[Scheme], names: Optional[Sequence[str]] = None):
    """The schemes called `names` (all by default) that this kinit can run.

    Returns ``(schemes, notices)``: the runnable schemes in the order given,
    and one line per scheme skipped because kinit lacks a name it needs.
    Raises ValueError for an unknown name.
    """
    by_name = {scheme.name: scheme for scheme in registry}
    names = list(by_name) if names is None else list(names)
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise ValueError(
            f"unknown scheme(s) {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(by_name)}."
        )
    schemes, notices = [], []
    for scheme in (by_name[name] for name in names):
        missing = scheme.missing()
        if missing:
            needs = ", ".join(f"kinit.{name}" for name in missing)
            notices.append(f"skipping {scheme.name!r} ({scheme.label}): this kinit has no {needs} yet.")
        else:
            schemes.append(scheme)
    return schemes, notices
