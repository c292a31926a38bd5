"""The initialization schemes the examples compare, by name.

A scheme is a kernel initializer per layer, optionally followed by a
model-level step (kinit's ``auto`` policy, LSUV) once the model is built.
Schemes that need a kinit name this version lacks are skipped with a notice,
so the examples run on any version of the package. Keras and kinit are
imported when a scheme is used, so that naming and checking schemes (a
script's flags) does not load TensorFlow.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Optional, Sequence


def kinit_module():
    """kinit, imported on first use (it loads Keras and TensorFlow)."""
    return importlib.import_module("kinit")


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
        return [name for name in self.requires if not hasattr(kinit_module(), name)]


def activation_gain(activation: Optional[str]) -> float:
    """`kinit.calculate_gain` of a Keras `activation` (with Keras's defaults,
    e.g. leaky_relu's slope 0.2); a softmax output layer counts as linear."""
    import keras

    from kinit.nonlinearity import activation_nonlinearity

    nonlinearity = activation_nonlinearity(keras.activations.get(activation), "")
    name = "linear" if nonlinearity.name == "softmax" else nonlinearity.name
    return kinit_module().calculate_gain(name, nonlinearity.param)


def kinit_scheme(name: str, *args, **kwargs) -> Callable[[Optional[str]], Any]:
    """A kernel initializer maker: ``kinit.<name>(*args, **kwargs)`` for every layer."""
    return lambda _activation: getattr(kinit_module(), name)(*args, **kwargs)


def keras_default(_activation: Optional[str]) -> str:
    return "glorot_uniform"


def orthogonal(activation: Optional[str]):
    return kinit_module().Orthogonal(gain=activation_gain(activation))


def auto_policy(model, _x, seed: int):
    return kinit_module().initialize(model, policy="auto", seed=seed)


def lsuv(model, x, seed: int):
    return kinit_module().lsuv(model, x, seed=seed)


ORTHOGONAL = Scheme("orthogonal", "orthogonal (gain of the activation)", orthogonal, requires=("Orthogonal",))
AUTO = Scheme("auto", "kinit auto policy", keras_default, auto_policy, requires=("initialize",))

#: The FashionMNIST comparison: the article's five schemes and the Keras
#: default, then kinit's He normal, orthogonal, auto policy and LSUV.
COMPARISON = (
    Scheme("zeros", "all zeros", kinit_scheme("Zeros")),
    Scheme("ones", "all ones", kinit_scheme("Ones")),
    Scheme("uniform", "uniform [0, 1]", kinit_scheme("RandomUniform", 0.0, 1.0)),
    Scheme("uniform_fan_in", "uniform ±1/√fan_in", kinit_scheme("FanInUniform")),
    Scheme("normal_fan_in", "normal σ = 1/√fan_in", kinit_scheme("FanInNormal")),
    Scheme("keras_default", "Keras default (glorot_uniform)", keras_default),
    Scheme("he_normal", "He normal", kinit_scheme("HeNormal")),
    ORTHOGONAL,
    AUTO,
    Scheme("lsuv", "LSUV", keras_default, lsuv, requires=("lsuv",)),
)

#: The signal-propagation picture (Glorot & Bengio 2010, He et al. 2015).
SIGNAL = (
    Scheme("random_normal", "RandomNormal(0.01)", kinit_scheme("RandomNormal", stddev=0.01)),
    Scheme("scaled_normal", "ScaledNormal(1.0)", kinit_scheme("ScaledNormal", 1.0)),
    Scheme("lecun", "LeCun normal", kinit_scheme("LecunNormal")),
    Scheme("glorot", "Glorot normal", kinit_scheme("GlorotNormal")),
    Scheme("he", "He normal", kinit_scheme("HeNormal")),
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
