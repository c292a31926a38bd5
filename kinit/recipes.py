"""Recipes for residual networks and transformers, as policies of `kinit.initialize`.

==========  ==============================================================
policy      rule
==========  ==============================================================
``gpt2``    every Dense / EinsumDense kernel and every embedding
            N(0, σ²), σ = 0.02; the last kernel layer of each residual
            branch (attention output, the MLP's second Dense)
            N(0, (σ/√R)²), R = the residual sums on its trunk; biases 0
            (Radford et al. 2019; Hugging Face's ``GPT2PreTrainedModel``)
``fixup``   classifier and the last layer of every residual branch 0;
            the other layers of a branch He normal × L^(−1/(2m−2))
            (L branches, m kernel layers deep); shortcut projections and
            the stem He normal (Zhang, Dauphin & Ma 2019)
``deepnet`` on residual branches: Xavier normal with gain β for the
            feed-forward, value and output projections, gain 1 for the
            query and key projections; β and the residual multiplier α
            from the number of blocks N (M) (Wang et al. 2022, DeepNorm)
==========  ==============================================================

Everything structural comes from the model map (`kinit.residual`,
`kinit.attention`): which layer's output enters which residual sum, how many
sums lie on the trunk, which layers form a branch and how deep they sit,
which projections feed an attention as query, key or value. Never from layer
names. Normalization layers keep the ``"auto"`` rules (γ = 1, β = 0), so
``zero_residual_gamma=True`` combines with every recipe; a kernel a recipe
has no rule for gets the ``"auto"`` rule, and its reason says so.

A model a recipe does not fit is a `ValueError` that says what the recipe
looked for. Where a layer's wiring is unknown (inside a layer the map could
not trace), its place in the residual structure is unknown too: it gets the
recipe's rule for a layer on no branch, and its reason says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional

import keras

from kinit.attention import KEY, QUERY, QUERY_OR_KEY, SCORE_ROLES, VALUE, attention_roles
from kinit.constant import Zeros
from kinit.layer_kinds import NORMALIZATION, kernel_layout
from kinit.model_map import TRACED, LayerRecord, ModelMap
from kinit.policy import Policy, register_policy
from kinit.random import RandomNormal
from kinit.residual import KERNELS, Branch, Placement, Residuals, ResidualSum, ancestors, is_kernel_call
from kinit.rules import AutoOptions, Choice, auto_choice, gain_text
from kinit.scalars import Bias, Scale
from kinit.validation import check_bool, check_choice, check_int, check_number
from kinit.variance import GlorotNormal, HeNormal

#: The layers whose kernels gpt2 draws from N(0, σ²) (GPT-2's ``Conv1D`` is a dense layer).
DENSE_LAYERS = (keras.layers.Dense, keras.layers.EinsumDense)


@dataclass(frozen=True)
class Rule:
    """How a recipe fills one weight: ``make(seed, kernel_layout)`` gives the
    initializer; ``make=None`` hands a kernel to the ``"auto"`` rules, with
    `reason` saying why."""

    make: Optional[Callable]
    scheme: str
    reason: str


class Recipe(Policy):
    """Base of the recipes: reads the residual structure once, then gives
    each weight a `Rule` (see the module docstring)."""

    name = ""

    def prepare(self, model_map: ModelMap, options: AutoOptions, strict: bool = True) -> None:
        self.notes: List[str] = []
        self.options = options
        if model_map.how != "symbolic":
            why = "; ".join(model_map.notes) or "it could not be traced"
            raise ValueError(
                f"{self.name}: looked for the residual sums of model {model_map.model.name!r} in its map, but "
                f"the model could not be traced symbolically ({why}), so the operations between its layers "
                "(x + f(x)) are not known."
            )
        self.residuals = Residuals(model_map)
        self.check(model_map)

    def check(self, model_map: ModelMap) -> None:
        """Raise `ValueError` if the model does not fit; fill `notes`."""

    def choose(self, model_map, record, weight, seed):
        rule = self.rule_for(record, weight)
        if rule is None:
            return None
        if rule.make is None:
            found = auto_choice(model_map, record, weight, seed, self.options)
            return Choice(found.initializer, found.scheme, f"{rule.reason} → auto rule: {found.reason}")
        return Choice(rule.make(seed, kernel_layout(record.layer, weight.name)), rule.scheme, rule.reason)

    def rule_for(self, record: LayerRecord, weight) -> Optional[Rule]:
        return None

    def placed(self, record: LayerRecord, fallback: Rule, rule_of: Callable[[Placement], Rule]) -> Rule:
        """The rule of `record`'s kernel by where its calls lie: `rule_of` each
        placement when they agree; `fallback`, with the reason why, where the
        place is not known or the calls disagree."""
        if record.composite:
            return replace(fallback, reason=f"{fallback.reason}; the layer uses this weight in its own "
                                              "operations, which are placed in no branch")
        if record.wiring != TRACED:
            return replace(fallback, reason=f"{fallback.reason}; wiring unknown ({record.why_unknown}), so "
                                              "its place in the residual structure is not known")
        placements = self.residuals.placements(record)
        if not placements:
            return replace(fallback, reason=f"{fallback.reason}; it was not called")
        rules = [rule_of(placement) for placement in placements]
        if all((rule.scheme, rule.reason) == (rules[0].scheme, rules[0].reason) for rule in rules):
            return rules[0]
        return replace(fallback, reason=f"{fallback.reason}; its {len(rules)} calls lie in different places "
                                          "of the residual structure")

    def not_found(self, model_map: ModelMap, looked_for: str) -> ValueError:
        unknown = f" The map notes: {'; '.join(model_map.notes)}." if model_map.notes else ""
        return ValueError(f"{self.name}: looked for {looked_for} in model {model_map.model.name!r} and found "
                          f"none.{unknown}")


def _normal(stddev: float) -> Callable:
    return lambda seed, layout: RandomNormal(0.0, stddev, seed=seed)


def _zeros(seed, layout):
    return Zeros()


def where(placement: Placement) -> str:
    """Where a kernel call lies, for a reason: its branch and position."""
    branch = placement.branch
    if branch is None:
        return "on no residual branch"
    if not branch.residual:
        return f"on {branch.describe()}"
    return f"position {placement.position} of m = {branch.depth} on {branch.describe()}"


@register_policy("gpt2")
class GPT2(Recipe):
    """GPT-2's initialization: N(0, σ²) everywhere, N(0, (σ/√R)²) where a
    branch adds to the residual stream.

    Formula: every Dense / EinsumDense kernel and every Embedding table
    ``W ~ N(0, σ²)``, σ = `stddev`; the kernel layers whose output is added
    to the residual stream (the last kernel layer of each residual branch:
    the attention output projection, the MLP's second Dense)
    ``W ~ N(0, (σ/√R)²)``, R = the number of residual sums on the trunk
    (2 per pre-norm block); their biases 0. Normalization layers and other
    weights keep the ``"auto"`` rules (γ = 1, β = 0).

    Example:

    >>> kinit.initialize(gpt, policy="gpt2", seed=0)            # σ = 0.02
    >>> kinit.initialize(gpt, policy=kinit.GPT2(stddev=0.01))

    Args:
        stddev: σ, GPT-2's ``initializer_range`` (0.02).

    Raises:
        ValueError (in `initialize`): if the model has no residual branch
            ending in a Dense or EinsumDense layer.

    Reference:
        Radford et al. 2019, "Language Models are Unsupervised Multitask
        Learners" (scale the residual layers by 1/√N); Hugging Face's
        ``GPT2PreTrainedModel._init_weights`` (``c_proj.weight`` ~
        N(0, (0.02/√(2·n_layer))²)).
    """

    name = "gpt2"

    def __init__(self, stddev: float = 0.02):
        self.stddev = check_number("GPT2", "stddev", stddev, minimum=0.0)

    def check(self, model_map):
        ends = [call for branch in self.residuals.residual_branches() for call in branch.last
                if isinstance(call.operation, DENSE_LAYERS)]
        if not ends:
            raise self.not_found(model_map, "a residual sum (an Add layer or x + f(x) whose one input is computed "
                                            "from the other) whose residual branch ends in a Dense or EinsumDense "
                                            "layer")
        counts = sorted({len(trunk) for trunk in self.residuals.trunks})
        self.notes.append(f"gpt2: {len(ends)} projection(s) end residual branches; R = "
                          f"{', '.join(str(r) for r in counts)} residual sums per trunk")

    def rule_for(self, record, weight):
        layer, sigma = record.layer, self.stddev
        if isinstance(layer, keras.layers.Embedding) and weight.name == "embeddings":
            return Rule(_normal(sigma), f"normal, σ = {sigma:g}", f"gpt2: embedding → N(0, σ²), σ = {sigma:g}")
        if not isinstance(layer, DENSE_LAYERS):
            return None
        if weight.name == "bias":
            return Rule(_zeros, "zeros", "gpt2: biases start at 0")
        if weight.name != "kernel":
            return None
        base = Rule(_normal(sigma), f"normal, σ = {sigma:g}", f"gpt2: {record.layer_class} kernel → N(0, σ²), "
                                                              f"σ = {sigma:g}")
        return self.placed(record, base, lambda placement: self._kernel(base, placement))

    def _kernel(self, base: Rule, placement: Placement) -> Rule:
        branch = placement.branch
        if placement.is_last and branch.residual:
            r = len(self.residuals.trunk_of(branch.sum))
            sigma = self.stddev / math.sqrt(r)
            return Rule(_normal(sigma), f"normal, σ/√R = {sigma:.4g}",
                        f"gpt2: ends {branch.describe()}, one of R = {r} residual sums on its trunk → "
                        f"N(0, (σ/√R)²), σ = {self.stddev:g}")
        return replace(base, reason=f"{base.reason} ({where(placement)})")


@register_policy("fixup")
class Fixup(Recipe):
    """Fixup: residual networks without normalization start as the identity.

    Formula (L residual branches, a branch m kernel layers deep):

    * the classifier (the kernel layer(s) before the model's output) and the
      last kernel layer of every residual branch: ``W = 0``;
    * the other kernel layers of a residual branch: He normal scaled by
      ``L^(−1/(2m−2))``, ``Var(W) = 2 / fan · L^(−1/(m−1))``;
    * kernel layers on a shortcut (projections) and off the branches (the
      stem): He normal, ``Var(W) = 2 / fan``;
    * biases 0; `kinit.Scale` 1 and `kinit.Bias` 0 (Fixup's scalar
      multiplier and biases, see the README).

    ``fan`` is the fan of `mode`: ``"fan_out"`` (the reference code's
    ``sqrt(2 / (out_channels · kernel_h · kernel_w))``) or ``"fan_in"``.

    Example:

    >>> kinit.initialize(resnet, policy="fixup", seed=0)
    >>> kinit.initialize(resnet, policy=kinit.Fixup(mode="fan_in"))

    Args:
        mode: the fan of He normal, ``"fan_out"`` (default, as the reference
            code) or ``"fan_in"``.
        allow_normalization: Fixup replaces normalization; a normalization
            layer on a residual branch is a `ValueError` unless True.

    Raises:
        ValueError (in `initialize`): if the model has no residual branch
            holding a kernel layer, or normalization on one.

    Reference:
        Zhang, Dauphin & Ma 2019, "Fixup Initialization: Residual Learning
        Without Normalization" (reference code: hongyi-zhang/Fixup).
    """

    name = "fixup"

    def __init__(self, mode: str = "fan_out", allow_normalization: bool = False):
        self.mode = check_choice("Fixup", "mode", mode, ("fan_out", "fan_in"))
        self.allow_normalization = check_bool("Fixup", "allow_normalization", allow_normalization)

    def check(self, model_map):
        branches = self.residuals.residual_branches()
        if not branches:
            raise self.not_found(model_map, "a residual branch (an Add layer or x + f(x) whose one input is "
                                            "computed from the other through kernel layers)")
        if not self.allow_normalization:
            for branch in branches:
                norms = [call for call in branch.calls if call.kind == "layer"
                         and isinstance(call.operation, NORMALIZATION)]
                if norms:
                    raise ValueError(
                        f"{self.name}: is for residual networks without normalization, and found "
                        f"{norms[0].label} on {branch.describe()}. Remove the normalization layers, use "
                        "zero_residual_gamma=True for a normalized network, or pass "
                        "kinit.Fixup(allow_normalization=True)."
                    )
        self.L = len(branches)
        self.classifier = set(self.residuals.outputs_kernels())
        depths = sorted({branch.depth for branch in branches})
        self.notes.append(f"fixup: L = {self.L} residual branches, m = {', '.join(map(str, depths))} kernel "
                          "layers deep")
        if not any(isinstance(record.layer, (Scale, Bias)) for record in model_map.records):
            self.notes.append("fixup: the model has no kinit.Scale / kinit.Bias layers; Fixup trains with a "
                              "scalar multiplier per branch and scalar biases (see the README)")

    def rule_for(self, record, weight):
        if not any(w.name in KERNELS for w in record.own_weights):
            return None
        if weight.name == "bias":
            return Rule(_zeros, "zeros", "fixup: biases start at 0")
        if weight.name not in KERNELS:
            return None
        base = self._he(1.0, "fixup: He normal, unscaled")
        return self.placed(record, base, lambda placement: self._kernel(placement, weight.name))

    def _he(self, scale: float, reason: str) -> Rule:
        gain = math.sqrt(2.0) * scale
        make = lambda seed, layout: HeNormal(gain=gain, mode=self.mode, distribution="normal",  # noqa: E731
                                             kernel_layout=layout, seed=seed)
        shown = "√2" if scale == 1.0 else f"√2·{scale:.4g}"
        return Rule(make, f"He normal ({self.mode}), gain {shown}: Var = gain²/{self.mode}", reason)

    def _kernel(self, placement: Placement, weight_name: str) -> Rule:
        branch = placement.branch
        if placement.call in self.classifier:
            return Rule(_zeros, "zeros", "fixup: classifier (the last kernel layer before the model's output) → 0")
        if branch is None:
            return self._he(1.0, "fixup: on no residual branch (stem) → He normal, unscaled")
        if not branch.residual:
            return self._he(1.0, f"fixup: projection on {branch.describe()} → He normal, unscaled")
        if placement.is_last and weight_name != "depthwise_kernel":
            return Rule(_zeros, "zeros", f"fixup: last layer (position {placement.position} of m = "
                                         f"{branch.depth}) of {branch.describe()} → 0")
        if placement.is_last:
            return self._he(1.0, f"fixup: depthwise stage of the last layer of {branch.describe()}, whose "
                                 "pointwise kernel starts at 0 → He normal, unscaled")
        m = branch.depth
        scale = self.L ** (-1.0 / (2 * m - 2))
        return self._he(scale, f"fixup: {where(placement)}, L = {self.L} branches → He normal × "
                               f"L^(−1/(2m−2)) = {scale:.4g}")


ARCHITECTURES = ("encoder", "decoder", "encoder_decoder")


@dataclass
class Stack:
    """One stack of a DeepNet model: its residual sums, blocks, α and β."""

    name: str
    sums: List[ResidualSum]
    blocks: int
    alpha: float
    beta: float
    #: The table's formulas with the block counts, e.g. ``"α = (2N)^(1/4), β = (8N)^(−1/4), N = 2"``.
    formula: str
    #: β's formula alone, e.g. ``"(8N)^(−1/4), N = 2"``.
    beta_formula: str


@register_policy("deepnet")
class DeepNet(Recipe):
    """DeepNet's initialization for DeepNorm, ``x ← LN(α·x + G(x))``.

    Formula: on every residual branch, Xavier normal
    ``Var(W) = gain² · 2 / (fan_in + fan_out)`` with gain β for the
    feed-forward layers and the attention's value and output projections,
    gain 1 for its query and key projections. From the paper's table
    (N encoder blocks, M decoder blocks):

    ====================  =====================  =======================
    architecture          α                      β
    ====================  =====================  =======================
    one stack (encoder-   (2N)^(1/4)             (8N)^(−1/4)
    or decoder-only)
    encoder-decoder:      0.81 (N⁴M)^(1/16)      0.87 (N⁴M)^(−1/16)
    encoder
    encoder-decoder:      (3M)^(1/4)             (12M)^(−1/4)
    decoder
    ====================  =====================  =======================

    The model must scale its shortcuts by α itself (``norm(alpha * x +
    f(x))``); the report's `notes` state α, and whether the map found it
    on the shortcuts. Kernels on no residual branch (embeddings' neighbours,
    the head) keep the ``"auto"`` rules.

    Example:

    >>> report = kinit.initialize(model, policy="deepnet")   # report.notes: α
    >>> policy = kinit.DeepNet(architecture="encoder_decoder")
    >>> report = kinit.initialize(seq2seq, policy=policy)      # N = M = 2 blocks
    >>> policy.alpha
    {'encoder': 1.0059048277795222, 'decoder': 1.5650845800732873}

    Args:
        architecture: None (one stack: encoder-only and decoder-only share
            the formula), ``"encoder"``, ``"decoder"`` or
            ``"encoder_decoder"`` (two residual streams; the one whose output
            the other reads is the encoder).
        N: the encoder's (or the one stack's) number of blocks; by default
            its trunk's residual sums / 2.
        M: the decoder's number of blocks; by default its trunk's residual
            sums / 2, or / 3 in an encoder-decoder (self-attention,
            cross-attention, feed-forward).

    Attributes (after `initialize`):
        alpha: α for one stack, or ``{"encoder": α, "decoder": α}``.
        beta: β likewise.
        stacks: the `Stack` of each trunk.

    Reference:
        Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers"
        (reference code: microsoft/torchscale).
    """

    name = "deepnet"

    def __init__(self, architecture: Optional[str] = None, N: Optional[int] = None, M: Optional[int] = None):
        if architecture is not None:
            check_choice("DeepNet", "architecture", architecture, ARCHITECTURES)
        self.architecture = architecture
        self.N = None if N is None else check_int("DeepNet", "N", N, minimum=1)
        self.M = None if M is None else check_int("DeepNet", "M", M, minimum=1)
        if architecture == "encoder" and M is not None:
            raise ValueError(f"DeepNet: argument `M` (decoder blocks) does not apply to architecture='encoder'; "
                             f"received M={M!r}.")
        if architecture == "decoder" and N is not None:
            raise ValueError(f"DeepNet: argument `N` (encoder blocks) does not apply to architecture='decoder'; "
                             f"received N={N!r}.")
        if architecture is None and N is not None and M is not None:
            raise ValueError(f"DeepNet: one stack takes `N` or `M`, not both; received N={N!r}, M={M!r} (pass "
                             "architecture='encoder_decoder' for two stacks).")
        self.alpha = self.beta = None
        self.stacks: List[Stack] = []

    def check(self, model_map):
        trunks = self.residuals.trunks
        if not trunks:
            raise self.not_found(model_map, "a residual sum (an Add layer or x + f(x) whose one input is computed "
                                            "from the other through kernel layers)")
        if self.architecture == "encoder_decoder":
            self.stacks = self._encoder_decoder(model_map, trunks)
            self.alpha = {stack.name: stack.alpha for stack in self.stacks}
            self.beta = {stack.name: stack.beta for stack in self.stacks}
        else:
            if len(trunks) != 1:
                raise ValueError(
                    f"{self.name}: looked for one residual stream in model {model_map.model.name!r} and found "
                    f"{len(trunks)} (ending in {', '.join(t[-1].label for t in trunks)}); for an encoder-decoder "
                    "model pass kinit.DeepNet(architecture='encoder_decoder')."
                )
            arg = "M" if self.architecture == "decoder" else "N"
            blocks = self.N or self.M or self._blocks(trunks[0], 2, arg, "the")
            name = self.architecture or "one stack"
            alpha, beta = (2 * blocks) ** 0.25, (8 * blocks) ** -0.25
            formula = f"α = (2{arg})^(1/4), β = (8{arg})^(−1/4), {arg} = {blocks} blocks"
            self.stacks = [Stack(name, trunks[0], blocks, alpha, beta, formula,
                                 f"(8{arg})^(−1/4), {arg} = {blocks} blocks")]
            self.alpha, self.beta = alpha, beta
        self._stack_of = {residual: stack for stack in self.stacks for residual in stack.sums}
        self._roles: Dict[Branch, dict] = {}
        for stack in self.stacks:
            self.notes.append(f"deepnet: {stack.name}: the residual connections must compute "
                              f"LN(α·x + f(x)) with α = {stack.alpha:.4g}; β = {stack.beta:.4g} ({stack.formula})")
            self.notes.append(f"deepnet: {stack.name}: {self._alpha_found(stack)}")

    def _blocks(self, trunk: List[ResidualSum], per_block: int, arg: str, which: str) -> int:
        if len(trunk) % per_block:
            raise ValueError(
                f"{self.name}: {which} trunk ending in {trunk[-1].label} has {len(trunk)} residual sums, not "
                f"{per_block} per block; pass kinit.DeepNet({arg}=<number of blocks>)."
            )
        return len(trunk) // per_block

    def _encoder_decoder(self, model_map, trunks) -> List[Stack]:
        if len(trunks) != 2:
            raise ValueError(
                f"{self.name}: architecture='encoder_decoder' looked for two residual streams (an encoder's and "
                f"a decoder's) in model {model_map.model.name!r} and found {len(trunks)}."
            )
        first, second = trunks
        reads = [first[-1].call in ancestors(second[-1].call), second[-1].call in ancestors(first[-1].call)]
        if reads[0] == reads[1]:
            raise ValueError(
                f"{self.name}: architecture='encoder_decoder' looked for one residual stream reading the other's "
                f"output (the decoder's cross-attention) in model {model_map.model.name!r}; of the streams ending "
                f"in {first[-1].label} and {second[-1].label}, {'both' if reads[0] else 'neither'} read the other."
            )
        encoder, decoder = (first, second) if reads[0] else (second, first)
        n = self.N or self._blocks(encoder, 2, "N", "the encoder's")
        m = self.M or self._blocks(decoder, 3, "M", "the decoder's")
        return [
            Stack("encoder", encoder, n, 0.81 * (n ** 4 * m) ** (1 / 16), 0.87 * (n ** 4 * m) ** (-1 / 16),
                  f"α = 0.81 (N⁴M)^(1/16), β = 0.87 (N⁴M)^(−1/16), N = {n}, M = {m}",
                  f"0.87 (N⁴M)^(−1/16), N = {n}, M = {m}"),
            Stack("decoder", decoder, m, (3 * m) ** 0.25, (12 * m) ** -0.25,
                  f"α = (3M)^(1/4), β = (12M)^(−1/4), M = {m}", f"(12M)^(−1/4), M = {m}"),
        ]

    @staticmethod
    def _alpha_found(stack: Stack) -> str:
        """Whether the map sees the shortcuts multiplied by α."""
        found = []
        for residual in stack.sums:
            producer = residual.shortcut.producer
            is_multiply = producer.kind == "op" and type(producer.operation).__name__ == "Multiply"
            found.append(next(iter(producer.constants.values()), None) if is_multiply else None)
        matching = [value for value in found if value is not None and math.isclose(value, stack.alpha, rel_tol=1e-3)]
        if len(matching) == len(found):
            return f"every shortcut is multiplied by α = {stack.alpha:.4g}, as the map shows"
        others = sorted({f"{value:.4g}" for value in found if value is not None and value not in matching})
        missing = [residual.label for residual, value in zip(stack.sums, found) if value is None]
        parts = []
        if missing:
            parts.append(f"{len(missing)} of {len(found)} shortcuts (e.g. {missing[0]}) are not multiplied by a "
                         "constant the map can read")
        if others:
            parts.append(f"shortcuts multiplied by {', '.join(others)} instead")
        return "; ".join(parts) + f": scale them by α = {stack.alpha:.4g}"

    def rule_for(self, record, weight):
        if weight.name not in KERNELS or not any(w.name in KERNELS for w in record.own_weights):
            return None
        fallback = Rule(None, "", "deepnet: no branch rule applies")
        return self.placed(record, fallback, self._kernel)

    def _kernel(self, placement: Placement) -> Rule:
        branch = placement.branch
        if branch is None or not branch.residual:
            return Rule(None, "", f"deepnet: {where(placement)}")
        stack = self._stack_of[branch.sum]
        roles = self._roles.get(branch)
        if roles is None:
            roles = self._roles[branch] = attention_roles(branch.calls, is_kernel_call)
        role = roles.get(placement.call, (None, None))[0]
        if role in SCORE_ROLES:
            label, gain = {QUERY: "query", KEY: "key", QUERY_OR_KEY: "query or key"}[role], 1.0
            what = f"{label} projection of the attention"
        else:
            gain = stack.beta
            if role == VALUE:
                what = "value projection of the attention"
            elif roles and placement.is_last:
                what = "output projection of the attention"
            elif roles:
                what = "layer of the attention"
            else:
                what = "feed-forward layer"
        make = lambda seed, layout: GlorotNormal(gain=gain, distribution="normal",  # noqa: E731
                                                 kernel_layout=layout, seed=seed)
        if gain == 1.0:
            gain_name = f"1 ({stack.name}, {stack.blocks} blocks"
        else:
            gain_name = f"β = {stack.beta:.4g} = {stack.beta_formula} ({stack.name}"
        reason = (f"deepnet: {what} ({where(placement)}) → Xavier normal, gain {gain_name}; "
                  f"its shortcuts need α = {stack.alpha:.4g})")
        return Rule(make, f"Xavier normal, gain {gain_text(gain)}: Var = 2·gain²/(fan_in + fan_out)", reason)
