"""The recipes gpt2, fixup and deepnet: every variance against its formula on
Functional and subclassed models, the constants against the reference code,
the reasons, and the models they do not fit (written against keras only: it
runs on every backend, see test_backends.py)."""

import math

import keras
import numpy as np
import pytest
from keras import layers

import kinit
from conftest import standard_errors
from kinit.model_map import map_model
from kinit.policy import POLICIES

import residual_models as rm

SIGMA = 0.02


def values_of(model, x=None):
    """Every weight's values by (layer path, weight name), as the report names them."""
    model_map = map_model(model, x)
    return {(record.path, weight.name): keras.ops.convert_to_numpy(weight).astype(np.float64)
            for record in model_map.records for weight in record.own_weights}


def rows_of(report):
    return {(row.path, row.weight): row for row in report}


def assert_normal(values, variance, k=5.0):
    """Mean 0 and the given variance within k standard errors of the sample size."""
    values = np.ravel(values)
    mean_tol, var_tol = standard_errors(values.size, k)
    assert abs(values.mean()) < mean_tol(variance), (values.mean(), variance)
    assert abs(values.var() - variance) < var_tol(variance), (values.var(), variance)


def assert_variances(values, expected):
    """Each weight's variance, and all of them pooled (values / σ_expected ~ N(0, 1))."""
    for key, variance in expected.items():
        assert_normal(values[key], variance)
    pooled = np.concatenate([np.ravel(values[key]) / math.sqrt(variance) for key, variance in expected.items()])
    assert_normal(pooled, 1.0)


def glorot(fan_in, fan_out, gain=1.0):
    return 2.0 * gain ** 2 / (fan_in + fan_out)


GPT_MODELS = [
    pytest.param(rm.gpt_functional, {"attn": "attn_{i}/", "fc": "fc_{i}", "proj": "proj_{i}"}, id="functional"),
    pytest.param(rm.gpt_subclassed, {"attn": "block_{i}/attn/", "fc": "block_{i}/fc", "proj": "block_{i}/proj"},
                 id="subclassed"),
]


def gpt_paths(names, i):
    attn = names["attn"].format(i=i)
    return attn, names["fc"].format(i=i), names["proj"].format(i=i)


# gpt2 ------------------------------------------------------------------------------

@pytest.mark.parametrize("build, names", GPT_MODELS)
def test_gpt2_gives_every_kernel_and_embedding_sigma_and_the_projections_sigma_over_root_r(build, names):
    model = build()
    report = kinit.initialize(model, policy="gpt2", seed=0, x=rm.token_ids())
    values, rows = values_of(model, rm.token_ids()), rows_of(report)
    r = 4  # two blocks, two residual sums each
    expected = {("tok", "embeddings"): SIGMA ** 2, ("head", "kernel"): SIGMA ** 2}
    for i in range(2):
        attn, fc, proj = gpt_paths(names, i)
        for name in ("query", "key", "value"):
            expected[(attn + name, "kernel")] = SIGMA ** 2
        expected[(fc, "kernel")] = SIGMA ** 2
        expected[(attn + "attention_output", "kernel")] = SIGMA ** 2 / r
        expected[(proj, "kernel")] = SIGMA ** 2 / r
        reason = rows[(proj, "kernel")].reason
        assert reason.startswith("gpt2: ends the residual branch into") and "R = 4 residual sums" in reason
        assert rows[(proj, "kernel")].scheme == "normal, σ/√R = 0.01"
        assert "position 1 of m = 2" in rows[(attn + "query", "kernel")].reason
        for weight in ("bias",):
            assert not values[(fc, weight)].any() and rows[(fc, weight)].reason == "gpt2: biases start at 0"
    assert_variances(values, expected)
    assert "on no residual branch" in rows[("head", "kernel")].reason
    # Normalization keeps γ = 1, β = 0.
    gammas = [key for key in values if key[1] == "gamma"]
    assert gammas and all((values[key] == 1).all() for key in gammas)
    assert any("R = 4" in note for note in report.notes)
    assert isinstance(report.policy, kinit.GPT2) and report.policy.stddev == SIGMA


def test_gpt2_takes_its_sigma_and_counts_r_from_the_trunk():
    model = rm.gpt_functional(blocks=3, width=16, heads=2)
    kinit.initialize(model, policy=kinit.GPT2(stddev=0.05), seed=1)
    values = values_of(model)
    assert_variances(values, {("fc_0", "kernel"): 0.05 ** 2, ("proj_2", "kernel"): 0.05 ** 2 / 6,
                              ("attn_1/attention_output", "kernel"): 0.05 ** 2 / 6})


# deepnet ---------------------------------------------------------------------------

@pytest.mark.parametrize("build, names", GPT_MODELS)
def test_deepnet_gives_query_and_key_gain_one_and_value_output_and_mlp_gain_beta(build, names):
    model = build()
    policy = kinit.DeepNet()
    report = kinit.initialize(model, policy=policy, seed=0, x=rm.token_ids())
    values, rows = values_of(model, rm.token_ids()), rows_of(report)
    n = 2
    beta, alpha = (8 * n) ** -0.25, (2 * n) ** 0.25
    assert policy.beta == pytest.approx(beta) and policy.alpha == pytest.approx(alpha)
    width = rm.WIDTH
    expected = {}
    for i in range(2):
        attn, fc, proj = gpt_paths(names, i)
        expected[(attn + "query", "kernel")] = glorot(width, width)
        expected[(attn + "key", "kernel")] = glorot(width, width)
        expected[(attn + "value", "kernel")] = glorot(width, width, beta)
        expected[(attn + "attention_output", "kernel")] = glorot(width, width, beta)
        expected[(fc, "kernel")] = glorot(width, 4 * width, beta)
        expected[(proj, "kernel")] = glorot(4 * width, width, beta)
        assert rows[(attn + "query", "kernel")].reason.startswith("deepnet: query projection of the attention")
        assert rows[(attn + "value", "kernel")].reason.startswith("deepnet: value projection of the attention")
        assert "gain β = 0.5 = (8N)^(−1/4), N = 2 blocks" in rows[(proj, "kernel")].reason
        assert "α = 1.414" in rows[(proj, "kernel")].reason
    assert_variances(values, expected)
    # Off the branches the auto rules hold, and the reason says so.
    assert rows[("head", "kernel")].reason.startswith("deepnet: on no residual branch → auto rule:")
    assert any("LN(α·x + f(x)) with α = 1.414" in note for note in report.notes)
    assert any("not multiplied by a constant" in note for note in report.notes)


def test_deepnet_reads_alpha_off_post_norm_shortcuts():
    policy = kinit.DeepNet()
    report = kinit.initialize(rm.deepnorm_functional(blocks=2), policy=policy, seed=0)
    assert "every shortcut is multiplied by α = 1.414, as the map shows" in " ".join(report.notes)
    report = kinit.initialize(rm.deepnorm_functional(blocks=2, alpha=1.0), policy=policy, seed=0)
    assert "shortcuts multiplied by 1 instead: scale them by α = 1.414" in " ".join(report.notes)


def test_deepnet_encoder_decoder_uses_the_table_for_each_stack():
    model = rm.encoder_decoder(encoder_blocks=2, decoder_blocks=2)
    with pytest.raises(ValueError, match="found 2 .*architecture='encoder_decoder'"):
        kinit.initialize(model, policy="deepnet")
    policy = kinit.DeepNet(architecture="encoder_decoder")
    report = kinit.initialize(model, policy=policy, seed=0)
    n, m = 2, 2
    encoder_beta, decoder_beta = 0.87 * (n ** 4 * m) ** (-1 / 16), (12 * m) ** -0.25
    assert policy.alpha == pytest.approx({"encoder": 0.81 * (n ** 4 * m) ** (1 / 16), "decoder": (3 * m) ** 0.25})
    assert policy.beta == pytest.approx({"encoder": encoder_beta, "decoder": decoder_beta})
    rows, width = rows_of(report), 16
    gains = {path: row.initializer.gain for (path, weight), row in rows.items()
             if weight == "kernel" and row.initializer is not None and hasattr(row.initializer, "gain")}
    assert gains["enc_fc_1"] == pytest.approx(encoder_beta)
    assert gains["enc_attn_0/value"] == pytest.approx(encoder_beta) and gains["enc_attn_0/key"] == 1.0
    # Cross-attention: its key and value read the encoder, yet belong to the decoder's branch.
    assert gains["dec_cross_1/key"] == 1.0 and gains["dec_cross_1/query"] == 1.0
    assert gains["dec_cross_1/value"] == pytest.approx(decoder_beta)
    assert gains["dec_proj_0"] == pytest.approx(decoder_beta)
    values = values_of(model)
    assert_variances(values, {("dec_cross_0/value", "kernel"): glorot(width, width, decoder_beta),
                              ("enc_fc_0", "kernel"): glorot(width, 2 * width, encoder_beta)})


def test_deepnet_takes_the_block_count_as_an_argument_and_refuses_an_uneven_trunk():
    model = rm.gpt_functional(blocks=2, width=16, heads=2)
    policy = kinit.DeepNet(N=6)
    report = kinit.initialize(model, policy=policy, seed=0)
    assert policy.beta == pytest.approx(48 ** -0.25)
    assert "N = 6 blocks" in rows_of(report)[("fc_0", "kernel")].reason
    inputs = keras.Input((8,))
    x = inputs + layers.Dense(8)(inputs)
    x = x + layers.Dense(8)(x)
    uneven = keras.Model(inputs, x + layers.Dense(8)(x))
    with pytest.raises(ValueError, match=r"has 3 residual sums, not 2 per block; pass kinit.DeepNet\(N="):
        kinit.initialize(uneven, policy="deepnet")


# fixup -----------------------------------------------------------------------------

def he_fan_out(shape):
    *kernel, _, out = shape
    return 2.0 / (out * int(np.prod(kernel)))


def test_fixup_zeroes_last_layers_and_classifier_and_scales_the_rest_functional():
    model = rm.fixup_resnet_functional(channels=16, blocks=3)
    for weight in model.weights:  # as if trained: the recipe must reset every scalar
        weight.assign(keras.ops.ones(weight.shape) * 0.3)
    report = kinit.initialize(model, policy="fixup", seed=0)
    values, rows = values_of(model), rows_of(report)
    big_l = 3
    expected = {("stem", "kernel"): he_fan_out((3, 3, 3, 16)), ("down_2", "kernel"): he_fan_out((1, 1, 16, 32))}
    for i in range(3):
        out = 32 if i == 2 else 16
        expected[(f"conv1_{i}", "kernel")] = he_fan_out((3, 3, 16, out)) * big_l ** -1.0  # m = 2: L^(−1/(m−1))
        assert not values[(f"conv2_{i}", "kernel")].any()
        assert "L = 3 branches → He normal × L^(−1/(2m−2)) = 0.5774" in rows[(f"conv1_{i}", "kernel")].reason
        assert rows[(f"conv2_{i}", "kernel")].reason.startswith("fixup: last layer (position 2 of m = 2)")
        assert (values[(f"scale_{i}", "scale")] == 1).all() and (values[(f"bias2b_{i}", "bias")] == 0).all()
    assert_variances(values, expected)
    assert not values[("fc", "kernel")].any() and not values[("fc", "bias")].any()
    assert rows[("fc", "kernel")].reason.startswith("fixup: classifier")
    assert rows[("down_2", "kernel")].reason == \
        "fixup: projection on the shortcut into 'add_2' (Add) → He normal, unscaled"
    assert report.notes == ["fixup: L = 3 residual branches, m = 2 kernel layers deep"]


def test_fixup_on_bottleneck_blocks_of_a_subclassed_model():
    model, x = rm.bottleneck_subclassed(blocks=4), rm.images()
    report = kinit.initialize(model, policy=kinit.Fixup(), seed=0, x=x)
    values, big_l = values_of(model, x), 4
    expected = {("stem", "kernel"): he_fan_out((3, 3, 3, 32))}
    for i in range(4):
        expected[(f"block_{i}/conv1", "kernel")] = he_fan_out((1, 1, 32, 8)) * big_l ** -0.5  # m = 3
        expected[(f"block_{i}/conv2", "kernel")] = he_fan_out((3, 3, 8, 8)) * big_l ** -0.5
        assert not values[(f"block_{i}/conv3", "kernel")].any()
    assert_variances(values, expected)
    # The stem's bias, a Dense bias and the scalars.
    assert not values[("stem", "bias")].any() and not values[("fc", "kernel")].any()
    assert "m = 3" in report.notes[0]


def test_fixup_fan_in_mode():
    model = rm.fixup_resnet_functional(channels=16, blocks=3)
    kinit.initialize(model, policy=kinit.Fixup(mode="fan_in"), seed=0)
    values = values_of(model)
    assert_normal(values[("conv1_1", "kernel")], 2.0 / (9 * 16) / 3)


# the constants, against the reference code ------------------------------------------

def test_the_constants_are_those_of_the_reference_code():
    # Hugging Face GPT2PreTrainedModel._init_weights: c_proj.weight ~ N(0, initializer_range / sqrt(2 * n_layer)).
    n_layer = 3
    report = rows_of(kinit.initialize(rm.gpt_functional(blocks=n_layer, width=16, heads=2), policy="gpt2"))
    assert report[("proj_1", "kernel")].initializer.stddev == pytest.approx(0.02 / math.sqrt(2 * n_layer))
    assert report[("fc_1", "kernel")].initializer.stddev == 0.02
    # hongyi-zhang/Fixup (cifar, imagenet): conv1 ~ N(0, sqrt(2 / (out_channels * prod(kernel))) * num_layers ** (-0.5))
    # for basic blocks, ** (-0.25) for bottlenecks; downsample unscaled; conv2 / conv3 and the Linear 0.
    for build, layer, shape, power in [
        (lambda: rm.fixup_resnet_functional(channels=16, blocks=5), "conv1_1", (3, 3, 16, 16), -0.5),
        (lambda: rm.bottleneck_subclassed(blocks=5), "block_1/conv2", (3, 3, 8, 8), -0.25),
    ]:
        model, x = build(), rm.images()
        rows = rows_of(kinit.initialize(model, policy="fixup", x=x))
        initializer = rows[(layer, "kernel")].initializer
        *kernel, _, out = shape
        reference_std = math.sqrt(2 / (out * np.prod(kernel))) * 5 ** power
        assert initializer.mode == "fan_out" and initializer.distribution == "normal"
        assert initializer.gain / math.sqrt(out * np.prod(kernel)) == pytest.approx(reference_std)
    # microsoft/torchscale: decoder-only alpha = (2M) ** 0.25, init_scale = (8M) ** 0.25 divides the
    # fc1, fc2, out_proj and v_proj weights; encoder-decoder decoder alpha (3M) ** 0.25, init_scale
    # (12M) ** 0.25; encoder alpha 0.81 (N^4 M) ** 0.0625.
    policy = kinit.DeepNet(M=12, architecture="decoder")
    kinit.initialize(rm.gpt_functional(blocks=2, width=16, heads=2), policy=policy)
    assert policy.alpha == pytest.approx((2 * 12) ** 0.25) and policy.beta == pytest.approx(1 / (8 * 12) ** 0.25)
    policy = kinit.DeepNet(architecture="encoder_decoder", N=6, M=6)
    kinit.initialize(rm.encoder_decoder(), policy=policy)
    assert policy.alpha["decoder"] == pytest.approx((3 * 6) ** 0.25)
    assert policy.beta["decoder"] == pytest.approx(1 / (12 * 6) ** 0.25)
    assert policy.alpha["encoder"] == pytest.approx(0.81 * (6 ** 4 * 6) ** 0.0625)


# with zero_residual_gamma, and models a recipe does not fit ---------------------------

def sandwich_norm_model():
    """Blocks x + LN(f(LN(x))): each residual branch ends in a normalization layer."""
    inputs = keras.Input((rm.SEQ, 16))
    x = inputs
    for i in range(2):
        h = layers.Dense(16, name=f"proj_{i}")(layers.Dense(32, activation="relu", name=f"fc_{i}")(
            layers.LayerNormalization(name=f"pre_{i}")(x)))
        x = x + layers.LayerNormalization(name=f"post_{i}")(h)
    return keras.Model(inputs, layers.Dense(4, name="head")(x))


def test_zero_residual_gamma_stays_available_with_every_recipe():
    for policy in ("gpt2", "deepnet"):
        model = sandwich_norm_model()
        rows = rows_of(kinit.initialize(model, policy=policy, seed=0, zero_residual_gamma=True))
        values = values_of(model)
        assert not values[("post_1", "gamma")].any() and (values[("pre_1", "gamma")] == 1).all()
        assert "last normalization of a residual branch" in rows[("post_0", "gamma")].reason
        assert rows[("proj_0", "kernel")].reason.startswith(policy)
    inputs = keras.Input((8, 8, 4))
    h = layers.BatchNormalization(name="bn")(layers.Conv2D(4, 3, padding="same", name="conv")(inputs))
    model = keras.Model(inputs, layers.Dense(2, name="fc")(layers.Flatten()(inputs + h)))
    with pytest.raises(ValueError, match="fixup: is for residual networks without normalization, and found 'bn'"):
        kinit.initialize(model, policy="fixup")
    kinit.initialize(model, policy=kinit.Fixup(allow_normalization=True), zero_residual_gamma=True)
    values = values_of(model)
    assert not values[("bn", "gamma")].any() and not values[("conv", "kernel")].any()


@pytest.mark.parametrize("policy, looked_for", [
    ("gpt2", "gpt2: looked for a residual sum .* ends in a Dense or EinsumDense layer in model 'mlp' and found none"),
    ("fixup", "fixup: looked for a residual branch .* in model 'mlp' and found none"),
    ("deepnet", "deepnet: looked for a residual sum .* in model 'mlp' and found none"),
])
def test_a_model_without_residual_branches_is_refused_saying_what_was_looked_for(policy, looked_for):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layers.Dense(2)(layers.Dense(8, activation="relu")(inputs)), name="mlp")
    before = [keras.ops.convert_to_numpy(w) for w in model.weights]
    with pytest.raises(ValueError, match=looked_for):
        kinit.initialize(model, policy=policy)
    assert all((keras.ops.convert_to_numpy(w) == b).all() for w, b in zip(model.weights, before))


class DecidesOnValues(keras.Model):
    """A model Keras cannot call on symbolic tensors."""

    def __init__(self):
        super().__init__(name="decides")
        self.body = layers.Dense(3, name="body")

    def call(self, x):
        h = self.body(x)
        if float(keras.ops.convert_to_numpy(keras.ops.max(h))) > 1e9:
            h = h * 0.0
        return x + h


def test_a_model_that_could_not_be_traced_is_refused_with_the_reason():
    model = DecidesOnValues()
    x = np.ones((2, 3), "float32")
    model(x)
    with pytest.raises(ValueError, match="gpt2: looked for the residual sums .* could not be traced symbolically"):
        kinit.initialize(model, policy="gpt2", x=x)


class Opaque(layers.Layer):
    """A residual block whose call cannot run on symbolic tensors."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = layers.Dense(16, name="inner")

    def build(self, input_shape):
        self.inner.build(input_shape)

    def call(self, x):
        h = self.inner(x)
        if float(keras.ops.convert_to_numpy(keras.ops.max(h))) > 1e9:
            h = h * 0.0
        return x + h

    def compute_output_shape(self, input_shape):
        return input_shape


def test_a_layer_whose_wiring_is_unknown_gets_the_off_branch_rule_and_says_why():
    inputs = keras.Input((16,))
    x = inputs + layers.Dense(16, name="proj")(layers.Dense(16, name="fc")(inputs))
    model = keras.Model(inputs, Opaque(name="opaque")(x))
    row = rows_of(kinit.initialize(model, policy="gpt2", seed=0))[("opaque/inner", "kernel")]
    assert row.scheme == "normal, σ = 0.02"
    assert "wiring unknown" in row.reason and "place in the residual structure is not known" in row.reason


def test_a_layer_called_in_different_places_gets_the_rule_off_the_branches_and_says_so():
    inputs = keras.Input((8,))
    shared = layers.Dense(8, name="shared")
    x = inputs + shared(layers.Dense(8, activation="relu", name="fc")(inputs))
    model = keras.Model(inputs, shared(x))
    row = rows_of(kinit.initialize(model, policy="gpt2", seed=0))[("shared", "kernel")]
    assert row.scheme == "normal, σ = 0.02" and "its 2 calls lie in different places" in row.reason


# parameters, names, the scalar layers ----------------------------------------------------

@pytest.mark.parametrize("make, argument", [
    (lambda: kinit.GPT2(stddev=0.0), "stddev"),
    (lambda: kinit.GPT2(stddev="0.02"), "stddev"),
    (lambda: kinit.Fixup(mode="fan_avg"), "mode"),
    (lambda: kinit.Fixup(allow_normalization=1), "allow_normalization"),
    (lambda: kinit.DeepNet(architecture="decoder_only"), "architecture"),
    (lambda: kinit.DeepNet(N=0), "N"),
    (lambda: kinit.DeepNet(M=2.5), "M"),
    (lambda: kinit.DeepNet(architecture="encoder", M=3), "M"),
    (lambda: kinit.DeepNet(architecture="decoder", N=3), "N"),
    (lambda: kinit.DeepNet(N=3, M=3), "N"),
    (lambda: kinit.Scale(value=float("nan")), "value"),
])
def test_bad_parameters_are_value_errors_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}`|{argument}="):
        make()


def test_the_recipes_are_registered_policies_with_defaults():
    assert {"gpt2": kinit.GPT2, "fixup": kinit.Fixup, "deepnet": kinit.DeepNet}.items() <= POLICIES.items()
    assert kinit.GPT2().stddev == 0.02 and kinit.Fixup().mode == "fan_out" and kinit.DeepNet().architecture is None


def test_scale_and_bias_layers_round_trip_and_are_reset_by_every_policy(tmp_path):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, kinit.Bias(0.5, name="b")(kinit.Scale(2.0, name="s")(inputs)))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(np.ones((1, 3), "float32"))), 2.5)
    path = str(tmp_path / "scalars.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("s")) is kinit.Scale and loaded.get_layer("b").value == 0.5
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(np.ones((1, 3), "float32"))), 2.5)
    rows = rows_of(kinit.initialize(loaded))
    assert rows[("s", "scale")].scheme == "ones" and rows[("b", "bias")].scheme == "zeros"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(np.ones((1, 3), "float32"))), 1.0)
