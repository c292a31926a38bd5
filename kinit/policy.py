"""Re-initialize a built model layer by layer: `initialize(model, policy="auto")`."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import keras

from kinit.base import KinitInitializer, RandomInitializer
from kinit.graph import is_float, own_weights, trace
from kinit.report import Report
from kinit.residual import residual_norms
from kinit.rules import KERNEL_WEIGHTS, AutoOptions, Choice, auto_choice, kernel_layout
from kinit.validation import check_bool, check_number, check_seed

OWNER = "initialize"


@dataclass
class InitRow:
    """One weight of an `initialize` report.

    Attributes:
        path: the layer's path in the model (``/``-joined names).
        weight: the weight's name (``kernel``, ``bias``, ``gamma``, …).
        shape: the weight's shape.
        scheme: the scheme applied, with its formula; ``"unchanged"`` if the
            weight was left as it was.
        reason: why this scheme (layer type, nonlinearity, where it was found).
        initializer: the initializer that produced the values (None if
            unchanged).
    """

    path: str
    weight: str
    shape: Tuple[int, ...]
    scheme: str
    reason: str
    initializer: Optional[Callable] = field(default=None, repr=False)


class InitReport(Report):
    """The rows of `initialize`, one per weight, in execution order."""

    columns = ("path", "weight", "shape", "scheme", "reason")


def initialize(
    model: keras.Model,
    policy="auto",
    seed: Optional[int] = None,
    *,
    relu_bias: float = 0.0,
    embedding_stddev: float = 0.02,
    zero_residual_gamma: bool = False,
) -> InitReport:
    """Re-initialize every weight of a built model in place, layer by layer.

    With ``policy="auto"`` each weight gets the scheme that suits its layer
    type and the nonlinearity that actually follows it (the layer's own
    activation, or the next layer when that is an activation layer, possibly
    behind a normalization layer): He normal for the ReLU family (the leaky
    slope in the gain), LeCun normal for SELU, Glorot uniform for tanh,
    sigmoid, softmax and linear layers, orthogonal recurrent kernels, LSTM
    forget-gate bias 1, N(0, σ²) embeddings, normalization γ = 1 and β = 0,
    zero biases. The full table is in `kinit.rules`. Conv*Transpose,
    depthwise and EinsumDense kernels get their fans from their own kernel
    layouts (an EinsumDense kernel's from its equation).

    Formula: per weight, the scheme's own (e.g. ``Var(W) = 2 / fan_in`` for
    a kernel followed by ReLU); the report states it.

    Example:

    >>> model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256, activation="relu"),
    ...                           keras.layers.Dense(10, activation="softmax")])
    >>> report = kinit.initialize(model, seed=0)
    >>> print(report)       # path, weight, shape, scheme, reason
    >>> report[0].scheme
    'He normal, gain √2: Var = gain²/fan_in'

    Usage with a map (first match wins; unmatched weights fall back to "auto"):

    >>> kinit.initialize(model, {"dense_1": "glorot_normal", keras.layers.Conv2D: kinit.HeUniform,
    ...                          r".*/bias": kinit.Constant(0.01), "frozen_.*": None})

    Args:
        model: a built Keras model: Sequential, Functional, nested models, or
            a subclassed model (its layers are walked in assignment order).
        policy: ``"auto"``; ``"mup"`` (μP after `kinit.mup.set_base_shapes`,
            see `kinit.mup.MupPolicy`, which may also be passed as an object);
            or one scheme for every kernel-like weight
            (kernels, recurrent kernels, embeddings) given as a name
            (``"glorot_uniform"`` — kinit's class of that name, else Keras's;
            ZerO is ``"zero_init"``, see `POLICY_NAMES`),
            an initializer class or an instance (used as a template: its
            configuration is kept, its seed replaced per weight); or a dict
            from keys to such schemes. A key is a layer class, or a string
            that is matched in full as a regular expression against a layer's
            path, its class name, or a weight's path ``"<layer path>/<weight>"``
            (the latter selects that weight whatever its kind); an enclosing
            layer's match applies to its sublayers. A value may also be
            ``"auto"``, or None to leave the weights unchanged. Biases,
            normalization parameters and statistics follow "auto" unless a
            weight-path key selects them.
        seed: None or an int. With an int, the same model and seed give the
            same weights (also in a new process); every weight draws from its
            own stream, so no two layers are equal.
        relu_bias: constant for the biases of layers followed by ReLU or
            leaky ReLU (0 by default; a small positive value such as 0.01
            keeps units active early in training).
        embedding_stddev: σ of the normal that fills Embedding tables.
        zero_residual_gamma: set γ = 0 in the last normalization layer of
            every residual branch that ends in an ``Add`` (Goyal et al. 2017;
            `kinit.residual` says exactly what is detected).

    Returns:
        An `InitReport`: a list of `InitRow` (path, weight, shape, scheme,
        reason) that prints as a table.

    Raises:
        ValueError: for a bad argument, an unbuilt model, or a scheme that
            cannot fill one of the weights (e.g. ``"identity"`` on a
            convolution kernel). Every new value is computed before the first
            is assigned, so the model is then left unchanged.

    Reference:
        He et al. 2015; Glorot & Bengio 2010; Klambauer et al. 2017; Saxe et
        al. 2014 (orthogonal); Jozefowicz et al. 2015 (forget-gate bias);
        Goyal et al. 2017, "Accurate, Large Minibatch SGD" (zero γ).
    """
    seed = check_seed(OWNER, seed)
    options = AutoOptions(
        relu_bias=check_number(OWNER, "relu_bias", relu_bias, minimum=0.0, strict=False),
        embedding_stddev=check_number(OWNER, "embedding_stddev", embedding_stddev, minimum=0.0),
    )
    zero_residual_gamma = check_bool(OWNER, "zero_residual_gamma", zero_residual_gamma)
    policy_object = _policy_object(policy, relu_bias, embedding_stddev, zero_residual_gamma)
    override = None if policy_object is not None else _policy_lookup(policy)
    # One seed per weight from kinit's seed mechanism: reproducible with an
    # int seed, and distinct for every weight.
    seeds = RandomInitializer(seed)
    report = InitReport()
    done = set()
    new_values = []
    with trace(model) as traced:
        nodes = list(traced.layers())
    if zero_residual_gamma and policy_object is None:
        options.zero_gamma = residual_norms(nodes)
    if policy_object is not None:
        policy_object.prepare(model)
    for node in nodes:
        for weight in own_weights(node.layer):
            if id(weight) in done:  # a weight shared by two layers is set once
                continue
            done.add(id(weight))
            if policy_object is not None:
                choice = policy_object.choose(node.path, node.layer, weight, seeds.next_seed())
            else:
                choice = _choose(node, weight, override, seeds.next_seed(), options)
            if choice.initializer is not None:
                new_values.append((weight, choice.initializer(tuple(weight.shape), dtype=weight.dtype)))
            report.append(
                InitRow(node.path, weight.name, tuple(weight.shape), choice.scheme, choice.reason, choice.initializer)
            )
    # Every value is computed before the first assignment: a scheme that
    # cannot fill a later weight raises with the model unchanged.
    for weight, value in new_values:
        weight.assign(value)
    return report


def _choose(node, weight, override, seed: int, options: AutoOptions) -> Choice:
    if not is_float(weight):
        return Choice(None, "unchanged", f"{weight.dtype} weight")
    found = override(node, weight)
    if found is None:
        return auto_choice(node, weight, seed, options)
    spec, why = found
    if spec is None:
        return Choice(None, "unchanged", f"policy: {why} → leave unchanged")
    if spec == "auto":
        return auto_choice(node, weight, seed, options)
    initializer = _instantiate(spec, kernel_layout(node.layer, weight.name), seed)
    return Choice(initializer, _describe(initializer), f"policy: {why}")


def _policy_lookup(policy):
    """A function (node, weight) → (scheme spec, why) or None for "auto"."""
    if isinstance(policy, str) and policy == "auto":
        return lambda node, weight: None
    if isinstance(policy, dict):
        entries = [(key, _spec(value, allow_none=True)) for key, value in policy.items()]
        for key, _ in entries:
            if not (isinstance(key, str) or (isinstance(key, type) and issubclass(key, keras.layers.Layer))):
                raise ValueError(
                    f"{OWNER}: the keys of a `policy` dict must be layer classes or regular "
                    f"expressions (str); received key {key!r}."
                )
        return lambda node, weight: _match(entries, node, weight)
    spec = _spec(policy, allow_none=False)
    return lambda node, weight: (spec, f"{_name(policy)} everywhere") if weight.name in KERNEL_WEIGHTS else None


def _match(entries, node, weight):
    """The first entry that selects `weight`: by its layer (or an enclosing
    layer) for kernel-like weights, else by the weight's own path."""
    weight_path = f"{node.path}/{weight.name}"
    for key, spec in entries:
        owner = next((n for n in _lineage(node) if _key_matches(key, n)), None)
        if owner is not None:
            if weight.name in KERNEL_WEIGHTS:
                return spec, f"{_name(key)} matches {owner.path!r}"
        elif isinstance(key, str) and re.fullmatch(key, weight_path):
            return spec, f"{key!r} matches {weight_path!r}"
    return None


def _lineage(node):
    while node is not None:
        yield node
        node = node.parent


def _key_matches(key, node) -> bool:
    if isinstance(key, type):
        return isinstance(node.layer, key)
    return bool(re.fullmatch(key, node.path) or re.fullmatch(key, type(node.layer).__name__))


def _spec(value, allow_none: bool):
    """Validate a scheme given by name, class or instance (or "auto"/None)."""
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        if value == "auto":
            return value
        cls = kinit_classes().get(value)
        if cls is not None:
            return cls
        try:
            return keras.initializers.get(value)
        except ValueError:
            raise ValueError(
                f"{OWNER}: unknown initializer name {value!r}; use \"auto\", a kinit name "
                f"({', '.join(repr(n) for n in sorted(kinit_classes()))}) or a Keras name."
            ) from None
    if isinstance(value, type) and issubclass(value, keras.initializers.Initializer):
        return value
    if isinstance(value, keras.initializers.Initializer):
        return value
    allowed = '"auto", an initializer name, class or instance' + (", or None" if allow_none else "")
    raise ValueError(f"{OWNER}: a policy must be {allowed}; received {value!r}.")


def _instantiate(spec, layout: str, seed: int):
    """A fresh initializer for one weight, with its own seed and kernel layout."""
    if isinstance(spec, type):
        params = inspect.signature(spec.__init__).parameters
        config = {}
    else:
        config = spec.get_config()
        params = config
    if "seed" in params:
        config["seed"] = seed
    if "kernel_layout" in params:
        config["kernel_layout"] = layout
    cls = spec if isinstance(spec, type) else type(spec)
    return cls.from_config(config) if config else cls()


#: Policy names where the snake_case of the class name misleads: ZerO would be
#: "zer_o", and "zero" is Keras's alias of "zeros"; "zero_init" follows the
#: authors' ``ZerO_Init``.
POLICY_NAMES = {"ZerO": "zero_init"}


def kinit_classes() -> dict:
    """kinit's initializer classes by policy name: the class name in snake_case
    (``"he_normal"`` → HeNormal), or its entry in `POLICY_NAMES`."""
    import kinit  # the package imports this module; look its names up at call time

    classes = {}
    for name, obj in vars(kinit).items():
        if isinstance(obj, type) and issubclass(obj, KinitInitializer) and obj not in (KinitInitializer, RandomInitializer):
            policy_name = POLICY_NAMES.get(name) or re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
            classes[policy_name] = obj
    return classes


def _describe(initializer) -> str:
    """``Class(arg=value, …)`` with the arguments that differ from the defaults."""
    defaults = {
        name: param.default for name, param in inspect.signature(type(initializer).__init__).parameters.items()
    }
    config = initializer.get_config()
    shown = [
        f"{name}={value!r}"
        for name, value in config.items()
        if name != "seed" and not (name in defaults and defaults[name] == value)
    ]
    return f"{type(initializer).__name__}({', '.join(shown)})"


def _name(value) -> str:
    if isinstance(value, type):
        return value.__name__
    return repr(value) if isinstance(value, str) else type(value).__name__


# --- Policy objects ------------------------------------------------------------
# A policy object has `prepare(model)` and `choose(path, layer, weight, seed)
# -> kinit.rules.Choice`; kinit.mup.MupPolicy is one, and "mup" names it. This
# hook stands apart from the map policies above until a policy registry
# replaces both.


def _policy_object(policy, relu_bias: float, embedding_stddev: float, zero_residual_gamma: bool):
    """The policy object `policy` names or is, or None for the other policies."""
    if isinstance(policy, str) and policy == "mup":
        from kinit.mup.rule import MupPolicy  # kinit.mup imports kinit; import it on use

        return MupPolicy(relu_bias=relu_bias, embedding_stddev=embedding_stddev,
                         zero_residual_gamma=zero_residual_gamma)
    if isinstance(policy, type) or not (callable(getattr(policy, "prepare", None))
                                        and callable(getattr(policy, "choose", None))):
        return None
    given = {"relu_bias": (relu_bias, 0.0), "embedding_stddev": (embedding_stddev, 0.02),
             "zero_residual_gamma": (zero_residual_gamma, False)}
    changed = [name for name, (value, default) in given.items() if value != default]
    if changed:
        raise ValueError(
            f"{OWNER}: with a policy object ({type(policy).__name__}) give {', '.join(changed)} "
            "to the policy itself; received them as arguments of initialize."
        )
    return policy
