"""One example instance of every public kinit scheme, and a layer it fits.

Tests that must cover "every scheme" iterate over `SCHEMES`, built from every
initializer class `kinit` exports, so a new public class is covered as soon
as it is exported (`LAYER_FACTORIES` and `EXAMPLE_SHAPES` say what it needs
when a Dense kernel does not fit).
"""

from __future__ import annotations

import inspect

import keras

import kinit


def conv1d_block(initializer, name: str):
    """A Conv1D over the (batch, 5) input read as 5 positions of 1 channel."""
    return keras.Sequential(
        [
            keras.layers.Reshape((5, 1)),
            keras.layers.Conv1D(6, 3, padding="same", kernel_initializer=initializer),
            keras.layers.Flatten(),
        ],
        name=name,
    )


# Schemes that need something other than a Dense kernel name the layer here.
LAYER_FACTORIES = {
    kinit.DeltaOrthogonal: conv1d_block,
    kinit.ConvolutionOrthogonal: conv1d_block,
    kinit.Dirac: conv1d_block,
}

# A kernel shape each scheme can fill, where the default one does not fit.
DEFAULT_SHAPE = (4, 4, 3, 6)
EXAMPLE_SHAPES = {kinit.DeltaOrthogonal: (3, 3, 3, 6), kinit.Identity: (4, 6)}


def example(cls):
    """A seeded instance of `cls` with its default arguments."""
    params = inspect.signature(cls.__init__).parameters
    return cls(seed=11) if "seed" in params else cls()


def public_scheme_classes():
    classes = {
        getattr(kinit, name)
        for name in kinit.__all__
        if inspect.isclass(getattr(kinit, name))
        and issubclass(getattr(kinit, name), kinit.KinitInitializer)
    }
    # Bases and shared machinery are not schemes a user picks.
    classes -= {kinit.KinitInitializer, kinit.RandomInitializer}
    return sorted(classes, key=lambda c: c.__name__)


SCHEMES = [example(cls) for cls in public_scheme_classes()]


def shape_for(initializer):
    return EXAMPLE_SHAPES.get(type(initializer), DEFAULT_SHAPE)


def layer_for(initializer, name: str):
    factory = LAYER_FACTORIES.get(type(initializer))
    if factory is not None:
        return factory(initializer, name)
    return keras.layers.Dense(6, kernel_initializer=initializer, name=name)
