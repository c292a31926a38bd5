"""Re-initialize a built model layer by layer: `initialize(model, policy="auto")`."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

import keras

from kinit import applied
from kinit.base import SCHEMES, RandomInitializer
from kinit.fans import KERNEL_LAYOUTS, equation_axes
from kinit.inputs import read_batch
from kinit.layer_kinds import KERNEL_WEIGHTS, is_float, kernel_layout
from kinit.model_map import LayerRecord, ModelMap, map_model
from kinit.report import Report
from kinit.residual import residual_norms
from kinit.rules import AutoOptions, Choice, auto_choice
from kinit.validation import check_bool, check_number, check_seed

OWNER = "initialize"
#: Examples of `x` used to trace a model (two are enough; the rest is not read).
MAX_EXAMPLES = 16


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
        layer_class: the class name of the layer that owns the weight.
    """

    path: str
    weight: str
    shape: Tuple[int, ...]
    scheme: str
    reason: str
    initializer: Optional[Callable] = field(default=None, repr=False)
    layer_class: str = ""


class InitReport(Report):
    """The rows of `initialize`, one per weight, in execution order.

    Attributes:
        notes: what the model map could not trace, and why (the rows of
            those layers say "wiring unknown"); then what the policy found
            (a recipe's R, L and m, DeepNet's α).
        policy: the `Policy` that chose the schemes (a recipe's parameters
            and what it read from the model, e.g. ``report.policy.alpha``).
    """

    columns = ("path", "weight", "shape", "scheme", "reason")

    def __init__(self, rows=(), notes=(), policy: Optional["Policy"] = None):
        super().__init__(rows)
        self.notes: list = list(notes)  # each report its own list
        self.policy = policy


def initialize(
    model: keras.Model,
    policy="auto",
    seed: Optional[int] = None,
    *,
    relu_bias: float = 0.0,
    embedding_stddev: float = 0.02,
    zero_residual_gamma: bool = False,
    strict: bool = True,
    x=None,
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
        model: a built Keras model: Sequential, Functional, nested models,
            subclassed models, custom layers: what follows each layer is read
            from the model map (`kinit.model_map`), as the model runs.
        policy: ``"auto"``, a recipe (``"gpt2"``, ``"fixup"``, ``"deepnet"``,
            see `kinit.recipes`), ``"mup"`` (after `kinit.mup.set_base_shapes`)
            or another registered policy name (`POLICIES`), or a `Policy`
            instance such as ``kinit.GPT2(stddev=0.01)`` or
            ``kinit.mup.MupPolicy(zero_readout=False)``; or one scheme for
            every kernel-like weight
            (kernels, recurrent kernels, embeddings) given as a name
            (``"glorot_uniform"`` — kinit's class of that name, else Keras's;
            ZerO is ``"zero_init"``, see `kinit.base.SCHEMES`),
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
            every residual branch that ends in a sum (an ``Add`` layer or
            ``x + f(x)``; Goyal et al. 2017; `kinit.residual` says exactly
            what is detected).
        strict: with a dict `policy`, raise `ValueError` for a key that
            matches no layer or weight (a typo, a layer type the model
            lacks); False ignores such keys.
        x: optional inputs (a batch, or a few examples) for a subclassed
            model that was built by calling it on data: Keras keeps no input
            shape for it, so without `x` its wiring is unknown (the report's
            notes say so). Not needed for Functional and Sequential models
            or models built with ``build(input_shape)``.

    Returns:
        An `InitReport`: a list of `InitRow` (path, weight, shape, scheme,
        reason) that prints as a table; its `notes` say what the model map
        could not trace and what the policy found, its `policy` is the
        policy used.

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
    strict = check_bool(OWNER, "strict", strict)
    chosen = resolve_policy(policy)
    if x is not None:
        x = read_batch(OWNER, x, "x", MAX_EXAMPLES).x
    model_map = map_model(model, x)
    if zero_residual_gamma:
        options.zero_gamma = residual_norms(model_map)
    chosen.prepare(model_map, options, strict=strict)
    # One seed per weight from kinit's seed mechanism: reproducible with an
    # int seed, and distinct for every weight.
    seeds = RandomInitializer(seed)
    report = InitReport()
    done = set()
    new_values = []
    for record in model_map.records:
        for weight in record.own_weights:
            if id(weight) in done:  # a weight shared by two layers is set once
                continue
            done.add(id(weight))
            choice = _choose(chosen, model_map, record, weight, seeds.next_seed(), options)
            report.append(InitRow(record.path, weight.name, tuple(weight.shape), choice.scheme, choice.reason,
                                  choice.initializer, record.layer_class))
            if choice.initializer is not None:
                new_values.append((weight, choice.initializer(tuple(weight.shape), dtype=weight.dtype), report[-1]))
    # Every value is computed before the first assignment: a scheme that
    # cannot fill a later weight raises with the model unchanged.
    for weight, value, _ in new_values:
        weight.assign(value)
    applied.remember(model, [(weight, row) for weight, _, row in new_values])  # read by `kinit.audit`
    report.notes = list(model_map.notes) + list(getattr(chosen, "notes", []))
    report.policy = chosen
    return report


def _choose(policy: "Policy", model_map: ModelMap, record: LayerRecord, weight, seed: int,
            options: AutoOptions) -> Choice:
    if not is_float(weight):
        return Choice(None, "unchanged", f"{weight.dtype} weight")
    choice = policy.choose(model_map, record, weight, seed)
    if choice is None:
        return auto_choice(model_map, record, weight, seed, options)
    return choice


class Policy:
    """How `initialize` chooses each weight's scheme.

    A policy reads the model map once (`prepare`) and then gives each
    weight a `kinit.rules.Choice` (`choose`), or None to leave it to the
    ``"auto"`` rules. Subclasses registered with `register_policy` are
    reachable by name: ``initialize(model, policy="gpt2")``.
    """

    #: What the policy found in the model, for the report's `notes`.
    notes: tuple = ()

    def prepare(self, model_map: ModelMap, options: AutoOptions, strict: bool = True) -> None:
        """Read what the policy needs from the map; raise `ValueError` if the
        model does not fit it. `options` are `initialize`'s settings of the
        ``"auto"`` rules (``relu_bias``, ``embedding_stddev``, the residual
        norms of ``zero_residual_gamma``), for policies that build on them."""

    def choose(self, model_map: ModelMap, record: LayerRecord, weight, seed: int) -> Optional[Choice]:
        return None


#: Policies by name (``"auto"``, the recipes, ``"mup"``), filled by `register_policy`.
POLICIES: Dict[str, Callable[[], Policy]] = {}


def register_policy(name: str):
    """Class decorator: make ``initialize(model, policy=name)`` use a default
    instance of the class."""

    def add(cls):
        POLICIES[name] = cls
        return cls

    return add


@register_policy("auto")
class AutoPolicy(Policy):
    """Every weight by the ``"auto"`` rules (`kinit.rules`)."""


class SchemePolicy(Policy):
    """One scheme for every kernel-like weight (`KERNEL_WEIGHTS`); "auto" for the rest."""

    def __init__(self, spec, name: str):
        self.spec, self.name = spec, name

    def choose(self, model_map, record, weight, seed):
        if weight.name not in KERNEL_WEIGHTS:
            return None
        return _scheme_choice(self.spec, record, weight, seed, f"policy: {self.name} everywhere")


class MapPolicy(Policy):
    """Schemes by layer class or by a regular expression on paths (see `initialize`)."""

    def __init__(self, entries: list):
        self.entries = entries

    def prepare(self, model_map, options, strict=True):
        unused = [key for key, _ in self.entries if not _selects_any(key, model_map)]
        if strict and unused:
            layers = ", ".join(f"{record.path} ({record.layer_class})" for record in model_map.records)
            raise ValueError(
                f"{OWNER}: the policy key(s) {', '.join(_name(key) for key in unused)} match no layer or "
                f"weight of model {model_map.model.name!r}; its layers are: {layers}. Pass strict=False to "
                "allow keys that match nothing."
            )

    def choose(self, model_map, record, weight, seed):
        found = _match(self.entries, record, weight)
        if found is None:
            return None
        spec, why = found
        if spec is None:
            return Choice(None, "unchanged", f"policy: {why} → leave unchanged")
        if spec == "auto":
            return None
        return _scheme_choice(spec, record, weight, seed, f"policy: {why}")


def _scheme_choice(spec, record: LayerRecord, weight, seed: int, reason: str) -> Choice:
    initializer = _instantiate(spec, kernel_layout(record.layer, weight.name), seed, tuple(weight.shape))
    return Choice(initializer, _describe(initializer), reason)


def resolve_policy(policy) -> Policy:
    """The `Policy` that `policy` (a name, scheme, dict or `Policy`) stands for."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str) and policy in POLICIES:
        return POLICIES[policy]()
    if isinstance(policy, type) and issubclass(policy, Policy):
        return policy()
    if isinstance(policy, dict):
        entries = [(_check_key(key), _spec(value, allow_none=True)) for key, value in policy.items()]
        return MapPolicy(entries)
    return SchemePolicy(_spec(policy, allow_none=False), _name(policy))


def _check_key(key):
    """A layer class, or a compiled regular expression; else `ValueError` naming the key."""
    if isinstance(key, type) and issubclass(key, keras.layers.Layer):
        return key
    if not isinstance(key, str):
        raise ValueError(
            f"{OWNER}: the keys of a `policy` dict must be layer classes or regular "
            f"expressions (str); received key {key!r}."
        )
    try:
        re.compile(key)
    except re.error as error:
        raise ValueError(
            f"{OWNER}: the `policy` key {key!r} is not a valid regular expression ({error})."
        ) from None
    return key


def _match(entries, record: LayerRecord, weight):
    """The first entry that selects `weight`: by its layer (or an enclosing
    layer) for kernel-like weights, else by the weight's own path."""
    weight_path = f"{record.path}/{weight.name}"
    for key, spec in entries:
        owner = next((r for r in record.lineage() if _key_matches(key, r)), None)
        if owner is not None:
            if weight.name in KERNEL_WEIGHTS:
                return spec, f"{_name(key)} matches {owner.path!r}"
        elif isinstance(key, str) and re.fullmatch(key, weight_path):
            return spec, f"{key!r} matches {weight_path!r}"
    return None


def _selects_any(key, model_map: ModelMap) -> bool:
    """Whether `key` names a layer of the map or the path of one of its weights."""
    for record in model_map.records:
        if _key_matches(key, record):
            return True
        if isinstance(key, str) and any(re.fullmatch(key, f"{record.path}/{w.name}") for w in record.own_weights):
            return True
    return False


def _key_matches(key, record: LayerRecord) -> bool:
    if isinstance(key, type):
        return isinstance(record.layer, key)
    return bool(re.fullmatch(key, record.path) or re.fullmatch(key, _class_name(record.layer)))


def _class_name(obj) -> str:
    """The class name without kinit's registration prefix."""
    return type(obj).__name__.split(".")[-1]


def _spec(value, allow_none: bool):
    """Validate a scheme given by name, class or instance (or "auto"/None)."""
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        if value == "auto":
            return value
        cls = SCHEMES.get(value)
        if cls is not None:
            return cls
        try:
            return keras.initializers.get(value)
        except ValueError:
            raise ValueError(
                f"{OWNER}: unknown policy or initializer name {value!r}; use a policy name "
                f"({', '.join(repr(n) for n in sorted(POLICIES))}), a kinit name "
                f"({', '.join(repr(n) for n in sorted(SCHEMES))}) or a Keras name."
            ) from None
    if isinstance(value, type) and issubclass(value, keras.initializers.Initializer):
        return value
    if isinstance(value, keras.initializers.Initializer):
        return value
    allowed = '"auto", an initializer name, class or instance' + (", or None" if allow_none else "")
    raise ValueError(f"{OWNER}: a policy must be {allowed}; received {value!r}.")


def _instantiate(spec, layout: str, seed: int, shape: Tuple[int, ...]):
    """A fresh initializer for one weight, with its own seed and kernel layout.

    A Keras initializer that takes ``input_axes``/``output_axes`` (its
    VarianceScaling family) gets an EinsumDense kernel's axes as
    `EinsumDense.build` would hand them over (the labels summed over; the
    labels of the output)."""
    if isinstance(spec, type):
        params = inspect.signature(spec.__init__).parameters
        config = {}
    else:
        config = dict(spec.get_config())
        params = config
    if "seed" in params:
        config["seed"] = seed
    if "kernel_layout" in params:
        config["kernel_layout"] = layout
    elif "input_axes" in params and layout not in KERNEL_LAYOUTS:
        summed, added, shared = equation_axes(shape, layout)
        config.update(input_axes=summed, output_axes=sorted(added + shared))
    cls = spec if isinstance(spec, type) else type(spec)
    return cls.from_config(config) if config else cls()


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
