"""How the signal travels through a deep MLP at initialization, per scheme.

The classic picture of Glorot & Bengio (2010) and He et al. (2015): a deep
stack of Dense layers (default 50 × 256) with tanh and with ReLU, fed unit
Gaussian inputs. For every scheme it measures, per layer,

* the activation std: the std of the layer's output on the batch; a scheme
  that is too small makes it vanish geometrically with depth, one that is too
  large makes it explode (ReLU) or saturate (tanh);
* the gradient std: the std of ∂L/∂h_l, where L = Σ h_top · g with
  g ~ N(0, 1) sends a unit random signal back from the top layer.

Schemes: RandomNormal(0.01), ScaledNormal(1.0), LeCun, Glorot, He,
Orthogonal (gain of the activation) and kinit's auto policy (the last two
are skipped with a notice when this kinit lacks them). The model computes in
float64 so that exploding and vanishing curves stay finite over 50 layers.
Prints the per-layer numbers and saves a PNG.

Usage:
    python examples/signal_propagation.py
    python examples/signal_propagation.py --depth 20 --width 128 --activations relu
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

EXAMPLES = Path(__file__).resolve().parent
# Runnable from a checkout without installing the package.
for _path in (EXAMPLES.parent, EXAMPLES):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import schemes as scheme_registry  # noqa: E402

DTYPE = "float64"
LINE_STYLES = ("-", "--", "-.", ":")


@dataclasses.dataclass
class Profile:
    """Per-layer stds of one scheme with one activation (index 0 = first layer)."""

    scheme: scheme_registry.Scheme
    activation: str
    activation_std: np.ndarray
    gradient_std: np.ndarray


def build_mlp(scheme, activation: str, depth: int, width: int, seed: int) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((width,), dtype=DTYPE)]
        + [
            keras.layers.Dense(
                width, activation=activation, dtype=DTYPE, name=f"dense_{index}",
                kernel_initializer=scheme.kernel_initializer(activation), bias_initializer="zeros",
            )
            for index in range(1, depth + 1)
        ]
    )
    if scheme.reinitialize is not None:
        scheme.reinitialize(model, None, seed)
    return model


def measure(scheme, activation: str, depth: int = 50, width: int = 256,
            batch: int = 512, seed: int = 0) -> Profile:
    """Activation and gradient std per layer at initialization."""
    model = build_mlp(scheme, activation, depth, width, seed)
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.standard_normal((batch, width)), dtype=DTYPE)
    cotangent = tf.constant(rng.standard_normal((batch, width)), dtype=DTYPE)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs, h = [], x
        for layer in model.layers:
            h = layer(h)
            outputs.append(h)
        signal = tf.reduce_sum(outputs[-1] * cotangent)
    gradients = tape.gradient(signal, outputs)
    return Profile(
        scheme, activation,
        np.array([float(tf.math.reduce_std(out)) for out in outputs]),
        np.array([float(tf.math.reduce_std(grad)) for grad in gradients]),
    )


def format_table(profiles: list[Profile], field: str) -> str:
    header = "| layer | " + " | ".join(p.scheme.label for p in profiles) + " |"
    lines = [header, "|" + "---|" * (len(profiles) + 1)]
    for index in range(len(getattr(profiles[0], field))):
        values = " | ".join(f"{getattr(p, field)[index]:.3g}" for p in profiles)
        lines.append(f"| {index + 1} | {values} |")
    return "\n".join(lines)


def plot(profiles: list[Profile], activations: Sequence[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(activations), 2, figsize=(13, 4.5 * len(activations)),
                                squeeze=False)
    for row, activation in zip(axes, activations):
        for axis, field, what in zip(row, ("activation_std", "gradient_std"),
                                     ("activation std", "gradient std")):
            mine = [p for p in profiles if p.activation == activation]
            for index, profile in enumerate(mine):
                values = getattr(profile, field)
                # Line styles tell apart curves that coincide (LeCun and Glorot
                # are the same scheme when fan_in == fan_out).
                axis.plot(range(1, len(values) + 1), values, label=profile.scheme.label,
                          linestyle=LINE_STYLES[index % len(LINE_STYLES)])
            axis.set(title=f"{activation}: {what} per layer", xlabel="layer", ylabel=what,
                     yscale="log")
        row[0].legend(fontsize="small")
    figure.suptitle("Signal propagation at initialization (unit Gaussian inputs)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    names = [scheme.name for scheme in scheme_registry.SIGNAL]
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--depth", type=int, default=50, help="number of Dense layers")
    parser.add_argument("--width", type=int, default=256, help="units per layer (and input size)")
    parser.add_argument("--batch", type=int, default=512, help="unit Gaussian input examples")
    parser.add_argument("--activations", nargs="+", default=["tanh", "relu"])
    parser.add_argument("--schemes", nargs="+", default=names, choices=names, metavar="NAME",
                        help=f"from: {', '.join(names)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("runs", "signal_propagation.png"),
                        help="the PNG to write")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> list[Profile]:
    args = parse_args(argv)
    selected, notices = scheme_registry.select(scheme_registry.SIGNAL, args.schemes)
    for notice in notices:
        print(f"note: {notice}")
    profiles = [
        measure(scheme, activation, args.depth, args.width, args.batch, args.seed)
        for activation in args.activations
        for scheme in selected
    ]
    for activation in args.activations:
        mine = [p for p in profiles if p.activation == activation]
        for field, what in (("activation_std", "activation std"), ("gradient_std", "gradient std")):
            print(f"\n{activation}, {what} per layer ({args.depth} × {args.width}):\n")
            print(format_table(mine, field))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    print(f"\nsaved {plot(profiles, args.activations, args.output)}")
    return profiles


if __name__ == "__main__":
    main()
