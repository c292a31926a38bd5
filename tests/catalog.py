"""One example instance of every public kinit scheme, and a layer it fits.

Tests that must cover "every scheme" iterate over `SCHEMES`;
`test_catalog_covers_every_export` fails when a new public class is missing.
"""

from __future__ import annotations

import inspect

import keras

import kinit

# Schemes that need something other than a Dense kernel name the layer here.
LAYER_FACTORIES = {}


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


def layer_for(initializer, name: str):
    factory = LAYER_FACTORIES.get(type(initializer))
    if factory is not None:
        return factory(initializer, name)
    return keras.layers.Dense(6, kernel_initializer=initializer, name=name)
