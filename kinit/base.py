"""The base classes every kinit initializer builds on.

`KinitInitializer` standardizes the call (shape and dtype checks) and derives
`get_config()` from the constructor signature, so every constructor argument
is serialized by construction. `RandomInitializer` adds kinit's seed
behaviour and the random draws the schemes share.

Seeds differ from Keras's built-ins on purpose. A Keras initializer seeded
with an int, or left unseeded, returns *the same values on every call*, so one
instance shared by two layers of one shape gives them identical weights. A
kinit initializer folds a call counter into its seed instead:

* ``seed=<int>``: call *k* of the instance uses a stream derived from
  ``(seed, k)``, so the same model code with the same seed gives bitwise the
  same weights, also in a new process, while successive calls (successive
  layers) differ.
* ``seed=None``: every call draws a fresh seed from Python's global random
  state, which `keras.utils.set_random_seed` seeds; so unseeded runs are
  reproducible after a global seed, and random otherwise.

Keras layers clone the initializers they are given while they build:
``MultiHeadAttention`` and ``GroupQueryAttention`` once per projection,
``EinsumDense`` to hand over its axes, all with
``type(init).from_config(init.get_config())``. A clone made that way from a
live instance continues the instance's stream (`SeedStream`, shared through
`LiveConfig`), so the projections draw calls 0, 1, 2, … of the instance
instead of all repeating call 0. A config that is stored, copied or
serialized is plain data, and an initializer rebuilt from it starts again
at call 0.

A shape with a zero dimension has no values to fill: every kinit scheme
returns an empty tensor of that shape and dtype, without checking what the
scheme would need of a non-empty shape and without drawing (a seeded
instance's next call is unchanged), as Keras's built-ins return empty tensors.
"""

from __future__ import annotations

import inspect
import math
import numbers
import random
import re
from typing import Optional, Tuple

import keras
import numpy as np
from keras import ops

from kinit.validation import MAX_SEED, check_seed

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

#: The package prefix of every registered name (``kinit>HeNormal``).
PACKAGE = "kinit"


class KinitInitializer(keras.initializers.Initializer):
    """Base of all kinit initializers: call checks and automatic config.

    Subclasses implement `generate(shape, dtype)` and store every constructor
    argument under an attribute of the same name.
    """

    #: Whether `generate` only makes sense for floating dtypes.
    float_only = True

    def __call__(self, shape, dtype=None):
        shape = standardize_shape(shape, type(self).__name__)
        dtype = keras.backend.standardize_dtype(dtype or keras.config.floatx())
        if self.float_only and dtype not in FLOAT_DTYPES:
            raise ValueError(
                f"{type(self).__name__}: cannot fill a tensor of dtype {dtype!r}; "
                f"allowed dtypes are {', '.join(FLOAT_DTYPES)}."
            )
        if 0 in shape:
            # Nothing to fill: one rule for every scheme (see the module docstring).
            return ops.zeros(shape, dtype=dtype)
        return self.generate(shape, dtype)

    def generate(self, shape: Tuple[int, ...], dtype: str):
        raise NotImplementedError

    def get_config(self) -> dict:
        params = inspect.signature(type(self).__init__).parameters.values()
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {p.name: getattr(self, p.name) for p in params if p.kind in named and p.name != "self"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SeedStream:
    """The draws of an int seed: call *k* uses a seed derived from ``(seed, k)``.

    An initializer and the clones Keras makes of it while it is alive share
    one stream, so that between them no call is repeated.
    """

    __slots__ = ("seed", "calls")

    def __init__(self, seed: int):
        self.seed = seed
        self.calls = 0

    def next_seed(self) -> int:
        """The seed of the next call; advances the call counter."""
        # SeedSequence mixes (seed, call) so that neighbouring seeds and
        # neighbouring calls give unrelated streams.
        state = np.random.SeedSequence([self.seed, self.calls]).generate_state(1)[0]
        self.calls += 1
        return int(state) & MAX_SEED


class LiveConfig(dict):
    """The config of a live initializer: a plain dict that also points to its stream.

    Only this very object links a `from_config` clone to the stream, also
    after in-place changes (``EinsumDense`` sets ``input_axes`` on it). Any
    copy (``dict(config)``, `copy.copy`, `copy.deepcopy`, `pickle`), JSON, and
    Keras's serialization, which rebuilds every dict, is plain data.
    """

    __slots__ = ("stream",)

    def __reduce__(self):
        return dict, (dict(self),)


class RandomInitializer(KinitInitializer):
    """Base of the random schemes: per-call seeds and the shared draws.

    A seeded instance draws from a `SeedStream`; `get_config` returns a
    `LiveConfig`, and `from_config` of it (with the same seed) shares the
    stream, so the clones Keras layers make while building continue it.

    The call counter lives in the instance and its live clones, and an
    initializer cannot know which layer calls it. A model's config stores
    serialized copies of its initializers' configs, so
    `keras.models.clone_model` gives every layer its own copy of a shared
    seeded instance, each starting again at call 0: the clone's same-shaped
    layers then get identical weights. Give each layer its own seed, use
    ``seed=None``, or call ``kinit.initialize(model, seed=...)`` on the clone.
    """

    def __init__(self, seed: Optional[int] = None):
        self.seed = check_seed(type(self).__name__, seed)
        self._stream = None if self.seed is None else SeedStream(self.seed)

    def next_seed(self) -> int:
        """The seed for this call; advances the call counter."""
        if self._stream is None:
            return random.randint(0, MAX_SEED)
        return self._stream.next_seed()

    def get_config(self) -> dict:
        config = LiveConfig(super().get_config())
        config.stream = self._stream
        return config

    @classmethod
    def from_config(cls, config):
        instance = cls(**config)
        stream = getattr(config, "stream", None)
        if stream is not None and stream.seed == instance.seed:
            instance._stream = stream
        return instance

    # Draws compute in float32 (float64 when asked) and cast, so float16 and
    # bfloat16 get correctly rounded values instead of low-precision sampling.
    # Rounding is monotone, so a uniform draw stays within the bounds rounded
    # to the dtype, which it may reach (the README's "Backends and dtypes").
    def normal(self, shape, dtype, mean=0.0, stddev=1.0):
        compute = compute_dtype(dtype)
        x = keras.random.normal(shape, mean=mean, stddev=stddev, dtype=compute, seed=self.next_seed())
        return ops.cast(x, dtype)

    def uniform(self, shape, dtype, minval=0.0, maxval=1.0):
        compute = compute_dtype(dtype)
        x = keras.random.uniform(shape, minval=minval, maxval=maxval, dtype=compute, seed=self.next_seed())
        return ops.cast(x, dtype)

    def truncated_normal(self, shape, dtype, mean=0.0, stddev=1.0):
        """Normal values truncated to ``mean ± 2·stddev`` (Keras's bounds)."""
        return self.bounded_normal(shape, dtype, mean, stddev, mean - 2.0 * stddev, mean + 2.0 * stddev)

    def bounded_normal(self, shape, dtype, mean, stddev, minval, maxval):
        """Normal values truncated to the absolute interval [minval, maxval].

        Inverse-CDF sampling, exact on every backend (Keras's torch backend
        keeps an out-of-bounds value when four rejection tries fail) and, on
        TensorFlow, faster than rejection sampling. With standardized bounds
        α < 0 < β: u ~ U(Φ(α), Φ(β)), z = Φ⁻¹(u) by `erfinv`. An interval on
        one side of the mean is sampled in the upper tail (mirrored if below)
        from its tail probabilities, which keep their precision where Φ
        rounds to 1 (see `upper_tail_normal`); nearer bounds up to
        `MAX_TAIL_STDDEVS` are resolved in float32.
        """
        compute = compute_dtype(dtype)
        alpha, beta = (minval - mean) / stddev, (maxval - mean) / stddev
        if alpha >= 0.0:
            z = self.upper_tail_normal(shape, compute, alpha, beta)
        elif beta <= 0.0:
            z = -self.upper_tail_normal(shape, compute, -beta, -alpha)
        else:
            u = self.uniform(shape, compute, normal_cdf(alpha), normal_cdf(beta))
            z = math.sqrt(2.0) * ops.erfinv(2.0 * u - 1.0)
        # The clip keeps the promise of the bounds against the last rounding.
        return ops.cast(ops.clip(mean + stddev * z, minval, maxval), dtype)

    def upper_tail_normal(self, shape, compute: str, alpha: float, beta: float):
        """Standard normal values truncated to [alpha, beta], 0 <= alpha < beta.

        With Q(z) = P(Z > z) = erfc(z/√2)/2: u = Q(α) − r·(Q(α) − Q(β)),
        r ~ U[0, 1), is uniform on (Q(β), Q(α)] and never below Q(α)·2⁻²⁴,
        and z = Q⁻¹(u) solves log Q(z) = log u by Newton's method, started
        at √(−2 log 2u) (never left of the root, as Q(z) <= exp(−z²/2)/2)
        and clipped to [α, β]. log Q is concave, so the steps approach the
        root from the right; five reach full float64 precision.
        """
        q_alpha, q_beta = upper_tail(alpha), upper_tail(beta)
        u = q_alpha - self.uniform(shape, compute) * (q_alpha - q_beta)
        z = ops.clip(ops.sqrt(ops.maximum(-2.0 * ops.log(2.0 * u), 0.0)), alpha, beta)
        for _ in range(5):
            q = 0.5 * ops.erfc(z / math.sqrt(2.0))
            density = ops.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
            z = ops.clip(z + (ops.log(q) - ops.log(u)) * q / density, alpha, beta)
        return z


def standardize_shape(shape, owner: str = "initializer") -> Tuple[int, ...]:
    """Return `shape` as a tuple of non-negative ints or raise ValueError."""
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0 for d in dims
    ):
        raise ValueError(
            f"{owner}: the shape must be a sequence of non-negative integers; "
            f"received shape={shape!r}."
        )
    return tuple(int(d) for d in dims)


def compute_dtype(dtype: str) -> str:
    return "float64" if dtype == "float64" else "float32"


def normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def upper_tail(z: float) -> float:
    """Q(z) = P(Z > z) for a standard normal Z, accurate far into the tail."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


#: Truncation intervals on one side of the mean must start within this many
#: standard deviations of it: u >= Q(11)·2⁻²⁴ ≈ 1e-35 stays a normal float32,
#: so every quantity of `RandomInitializer.upper_tail_normal` is finite.
MAX_TAIL_STDDEVS = 11.0


#: kinit's initializer classes by policy name (``"he_normal"`` → HeNormal),
#: filled by `register`: the names `kinit.initialize` accepts for a scheme.
SCHEMES: dict = {}

#: Policy names where the snake_case of the class name misleads: ZerO would be
#: "zer_o", and "zero" is Keras's alias of "zeros"; "zero_init" follows the
#: authors' ``ZerO_Init``.
POLICY_NAMES = {"ZerO": "zero_init"}


def register(cls=None, *, package: str = PACKAGE):
    """Register `cls` for Keras serialization as ``kinit>{class name}``.

    An initializer class is also entered in `SCHEMES` under its policy name:
    its class name in snake case (``HeNormal`` → ``"he_normal"``) or its
    entry in `POLICY_NAMES`.

    The class is renamed ``kinit.{class name}``, the name a saved config
    records. Keras resolves a config's class name against its own built-ins
    before it looks at the registry, so a model saved with ``kinit.Zeros``
    would otherwise load, without kinit imported, as Keras's ``Zeros`` (and
    ``kinit.HeNormal`` would fail on an unexpected keyword). With the prefix,
    loading without ``import kinit`` always fails, naming ``kinit>…``.

    ``@register(package="kinit.mup")`` registers a subpackage's class as
    ``kinit.mup>{class name}`` and renames it ``kinit.mup.{class name}``.
    """
    if cls is None:
        return lambda cls: register(cls, package=package)
    name = cls.__name__
    keras.saving.register_keras_serializable(package=package, name=name)(cls)
    cls.__name__ = f"{package}.{name}"
    if issubclass(cls, KinitInitializer):
        SCHEMES[POLICY_NAMES.get(name) or snake_case(name)] = cls
    return cls


def snake_case(name: str) -> str:
    """``HeNormal`` → ``he_normal``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def register_alias(alias: str, cls):
    """Make ``kinit>{alias}`` resolve to the registered class `cls`; return `cls`.

    Only a lookup name is added (to Keras's custom objects): registering
    `cls` a second time would change the name it is saved under.
    """
    keras.saving.get_custom_objects()[f"{PACKAGE}>{alias}"] = cls
    SCHEMES[snake_case(alias)] = cls
    return cls

