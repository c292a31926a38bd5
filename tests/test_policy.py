"""kinit.initialize: the scheme chosen per weight, its statistics, and the model afterwards."""

import math
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

import kinit
from conftest import standard_errors

TESTS = Path(__file__).resolve().parent
UNIFORM_KURTOSIS = 1.8
NORMAL_KURTOSIS = 3.0  # an upper bound for the truncated normal's


def fill(model, value=3.0):
    """Overwrite every weight, so that a weight `initialize` forgets is caught."""
    for weight in model.weights:
        weight.assign(np.full(weight.shape, value, dtype=weight.dtype))


def rows_by_weight(report):
    return {(row.path, row.weight): row for row in report}


def value(model, path):
    """The numpy value of the weight at `path` ("layer/weight")."""
    return next(w for w in model.weights if w.path.endswith(path)).numpy()


def assert_moments(values, variance, kurtosis):
    mean_tol, var_tol = standard_errors(values.size)
    assert abs(values.mean()) <= mean_tol(variance)
    assert abs(values.var() - variance) <= var_tol(variance, kurtosis)


def mixed_model():
    image = keras.Input((8, 8, 3), name="image")
    h = layers.Conv2D(32, 3, padding="same", name="conv")(image)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.ReLU(name="relu")(h)
    h = layers.Flatten()(h)
    h = layers.Dense(256, activation="relu", name="dense_relu")(h)
    h = layers.Dense(256, name="dense_leaky")(h)
    h = layers.LeakyReLU(0.2, name="leaky")(h)
    h = layers.Dense(128, activation="tanh", name="dense_tanh")(h)
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    e = layers.Embedding(500, 16, name="embedding")(tokens)
    e = layers.LSTM(32, name="lstm")(e)
    y = layers.Concatenate()([h, e])
    y = layers.Dense(10, activation="softmax", name="head")(y)
    return keras.Model([image, tokens], y)


def test_mixed_model_gets_the_scheme_of_each_layer_and_its_variance():
    model = mixed_model()
    fill(model)
    report = kinit.initialize(model, seed=0)
    rows = rows_by_weight(report)
    assert len(report) == len(model.weights)

    expected = {
        # (path, weight): (scheme prefix, words in the reason, variance, kurtosis)
        ("conv", "kernel"): ("He normal, gain √2", ["ReLU", "'bn' then 'relu'"], 2 / 27, NORMAL_KURTOSIS),
        ("dense_relu", "kernel"): ("He normal, gain √2", ["relu", "own activation"], 2 / 2048, NORMAL_KURTOSIS),
        ("dense_leaky", "kernel"): ("He normal", ["LeakyReLU(0.2)", "'leaky'"], 2 / (1.04 * 256), NORMAL_KURTOSIS),
        ("dense_tanh", "kernel"): ("Glorot uniform", ["tanh"], 2 / (256 + 128), UNIFORM_KURTOSIS),
        ("lstm/lstm_cell", "kernel"): ("Glorot uniform", ["input kernel"], 2 / (16 + 128), UNIFORM_KURTOSIS),
        ("embedding", "embeddings"): ("normal, σ = 0.02", ["Embedding"], 0.02**2, NORMAL_KURTOSIS),
        # The head sees 128 (tanh) + 32 (LSTM) features: fan_in 160, fan_out 10.
        ("head", "kernel"): ("Glorot uniform", ["softmax"], 2 / (160 + 10), UNIFORM_KURTOSIS),
    }
    for (path, weight), (scheme, words, variance, kurtosis) in expected.items():
        row = rows[(path, weight)]
        assert row.scheme.startswith(scheme), (path, row.scheme)
        for word in words:
            assert word in row.reason, (path, row.reason)
        assert_moments(value(model, f"{path}/{weight}"), variance, kurtosis)

    recurrent = value(model, "lstm_cell/recurrent_kernel")
    assert "orthogonal" in rows[("lstm/lstm_cell", "recurrent_kernel")].scheme
    np.testing.assert_allclose(recurrent @ recurrent.T, np.eye(32), atol=1e-5)  # (32, 128): orthonormal rows
    lstm_bias = value(model, "lstm_cell/bias")
    np.testing.assert_array_equal(lstm_bias, np.repeat([0.0, 1.0, 0.0, 0.0], 32))
    np.testing.assert_array_equal(value(model, "bn/gamma"), np.ones(32))
    for path in ("bn/beta", "bn/moving_mean", "conv/bias", "dense_relu/bias", "head/bias"):
        np.testing.assert_array_equal(value(model, path), 0.0)
    np.testing.assert_array_equal(value(model, "bn/moving_variance"), np.ones(32))
    assert np.abs(value(model, "dense_tanh/kernel")).max() <= math.sqrt(6 / (256 + 128))
    assert "path" in str(report).splitlines()[0] and "dense_leaky" in str(report)


def activation_stds(model, x):
    probe = keras.Model(model.inputs, [layer.output for layer in model.layers])
    return [float(np.std(output)) for output in probe.predict_on_batch(x)]


def test_deep_relu_mlp_keeps_its_scale_with_auto_and_collapses_with_a_small_normal():
    model = keras.Sequential([keras.Input((256,))] + [layers.Dense(256, activation="relu") for _ in range(30)])
    x = np.random.default_rng(0).normal(size=(256, 256)).astype("float32")

    kinit.initialize(model, seed=1)
    stds = activation_stds(model, x)
    assert 0.5 <= stds[29] / stds[0] <= 2.0, stds

    report = kinit.initialize(model, policy=kinit.RandomNormal(stddev=0.01), seed=1)
    assert all(row.scheme == "kinit.RandomNormal(stddev=0.01)" for row in report if row.weight == "kernel")
    stds = activation_stds(model, x)
    # Each layer multiplies the std by about 0.01·√(256/2) ≈ 0.11.
    assert stds[29] / stds[0] < 1e-10, stds


def test_transposed_and_depthwise_kernels_use_their_own_fans():
    inputs = keras.Input((6, 6, 8))
    h = layers.Conv2DTranspose(64, 3, activation="relu", name="up")(inputs)
    h = layers.DepthwiseConv2D(3, activation="relu", name="depthwise")(h)
    model = keras.Model(inputs, h)
    fill(model)
    rows = rows_by_weight(kinit.initialize(model, seed=2))
    # Conv2DTranspose kernel (3, 3, out=64, in=8): fan_in = 9·8, not 9·64.
    assert "transposed" in rows[("up", "kernel")].reason
    assert_moments(value(model, "up/kernel"), 2 / 72, NORMAL_KURTOSIS)
    # DepthwiseConv2D kernel (3, 3, 64, 1): each output sees 9 inputs, not 9·64.
    assert "depthwise" in rows[("depthwise", "kernel")].reason
    assert_moments(value(model, "depthwise/kernel"), 2 / 9, NORMAL_KURTOSIS)


def test_einsum_dense_kernels_get_their_fans_from_the_equation():
    inputs = keras.Input((64,))
    # A sequence of 8 steps of 32 features.
    sequence = layers.EinsumDense("ab,bcd->acd", (8, 32), activation="relu", name="einsum")(inputs)
    attended = layers.MultiHeadAttention(num_heads=4, key_dim=16, name="mha")(sequence, sequence)
    model = keras.Model(inputs, attended)
    fill(model)
    rows = rows_by_weight(kinit.initialize(model, seed=4))
    # Kernel (64, 8, 32): fan_in 64 (the standard reading: 64·8).
    assert "'ab,bcd->acd'" in rows[("einsum", "kernel")].reason
    assert_moments(value(model, "einsum/kernel"), 2 / 64, NORMAL_KURTOSIS)
    # Query kernel (32, 4, 16) "abc,cde->abde": fans 32 and 64 (standard: 128 and 512).
    assert_moments(value(model, "mha/query/kernel"), 2 / (32 + 64), UNIFORM_KURTOSIS)
    # Output kernel (4, 16, 32) "abcd,cde->abe": fans 64 and 32 (standard: 64 and 128).
    assert_moments(value(model, "mha/attention_output/kernel"), 2 / (64 + 32), UNIFORM_KURTOSIS)


def test_pooling_padding_cropping_and_reshaping_do_not_hide_the_nonlinearity():
    inputs = keras.Input((8, 8, 3))
    h = layers.Conv2D(4, 3, padding="same", name="pooled")(inputs)
    h = layers.ReLU(name="relu")(layers.MaxPooling2D(name="pool")(h))
    h = layers.Conv2D(4, 3, padding="same", name="reshaped")(h)
    h = layers.Cropping2D(1, name="crop")(layers.ZeroPadding2D(1, name="pad")(h))
    h = layers.Reshape((16, 4), name="reshape")(h)
    h = layers.Activation("selu", name="selu")(h)
    h = layers.Conv1D(4, 3, name="global")(h)
    h = layers.GlobalAveragePooling1D(name="gap")(h)
    model = keras.Model(inputs, layers.LeakyReLU(0.2, name="leaky")(h))
    rows = rows_by_weight(kinit.initialize(model, seed=0))
    assert rows[("pooled", "kernel")].scheme.startswith("He normal, gain √2")
    assert "'pool' then 'relu'" in rows[("pooled", "kernel")].reason
    assert rows[("reshaped", "kernel")].scheme.startswith("LeCun normal")
    assert "'pad' then 'crop' then 'reshape' then 'selu'" in rows[("reshaped", "kernel")].reason
    assert "LeakyReLU(0.2)" in rows[("global", "kernel")].reason


def test_next_layer_is_found_across_nesting_and_in_subclassed_models():
    inner = keras.Sequential([keras.Input((16,)), layers.Dense(16, name="inner_dense")], name="inner")
    inputs = keras.Input((16,))
    outputs = layers.Activation("selu", name="selu")(inner(inputs))
    rows = rows_by_weight(kinit.initialize(keras.Model(inputs, outputs), seed=0))
    assert rows[("inner/inner_dense", "kernel")].scheme.startswith("LeCun normal")

    class Block(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(8)
            self.act = layers.ELU(alpha=0.5)
            self.out = layers.Dense(2)

        def call(self, x):
            return self.out(self.act(self.dense(x)))

    block = Block()
    block(np.zeros((1, 4), "float32"))
    rows = rows_by_weight(kinit.initialize(block, seed=0))
    gain = kinit.calculate_gain("elu", 0.5)
    assert rows[(block.dense.name, "kernel")].scheme.startswith(f"He normal, gain {gain:.4g}")
    assert rows[(block.out.name, "kernel")].scheme.startswith("Glorot uniform")


class SkipLSTM(layers.Layer):
    """A custom layer with a kernel of its own next to an LSTM sublayer."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rnn = layers.LSTM(64, name="lstm")

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 64), name="kernel")

    def call(self, x):
        return keras.ops.matmul(x[:, -1], self.kernel) + self.rnn(x)


def test_a_layer_holding_a_recurrent_layer_is_not_a_recurrent_cell():
    inputs = keras.Input((5, 128))
    model = keras.Model(inputs, layers.ReLU()(SkipLSTM(name="skip")(inputs)))
    rows = rows_by_weight(kinit.initialize(model, seed=0))
    # Its own kernel follows the rules for kernels (He before a ReLU), not an RNN cell's.
    assert rows[("skip", "kernel")].scheme.startswith("He normal"), rows[("skip", "kernel")]
    assert_moments(value(model, "skip/kernel"), 2 / 128, NORMAL_KURTOSIS)
    assert rows[("skip/lstm/lstm_cell", "recurrent_kernel")].scheme.startswith("orthogonal")


class Projected(keras.Model):
    """A subclassed model with weights of its own besides a sublayer's."""

    def __init__(self):
        super().__init__(name="projected")
        self.head = layers.Dense(4, name="head")

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 64), name="kernel")
        self.bias = self.add_weight(shape=(64,), name="bias")

    def call(self, x):
        return self.head(keras.ops.matmul(x, self.kernel) + self.bias)


def test_the_weights_a_subclassed_model_creates_itself_are_initialized():
    model = Projected()
    model(np.zeros((1, 32), "float32"))
    fill(model)
    rows = rows_by_weight(kinit.initialize(model, seed=0))
    assert len(rows) == len(model.weights) == 4
    assert rows[("projected", "kernel")].scheme.startswith("Glorot uniform")
    assert_moments(model.kernel.numpy(), 2 / (32 + 64), UNIFORM_KURTOSIS)
    np.testing.assert_array_equal(model.bias.numpy(), 0.0)


def residual_model():
    inputs = keras.Input((8, 8, 4))
    x = layers.Conv2D(8, 3, padding="same")(inputs)

    def block(x, index, projection):
        h = layers.Conv2D(8, 3, padding="same")(x)
        h = layers.BatchNormalization(name=f"bn_a{index}")(h)
        h = layers.ReLU()(h)
        h = layers.Conv2D(8, 3, padding="same")(h)
        h = layers.BatchNormalization(name=f"bn_b{index}")(h)
        shortcut = x
        if projection:
            shortcut = layers.BatchNormalization(name=f"bn_proj{index}")(layers.Conv2D(8, 1)(x))
        return layers.ReLU()(layers.Add()([shortcut, h]))

    return keras.Model(inputs, block(block(x, 1, False), 2, True))


def test_zero_residual_gamma_zeroes_the_last_normalization_of_each_residual_branch_only():
    model = residual_model()
    report = kinit.initialize(model, seed=0, zero_residual_gamma=True)
    zeroed = {row.path for row in report if row.weight == "gamma" and row.scheme == "zeros"}
    assert zeroed == {"bn_b1", "bn_b2"}
    for name in ("bn_b1", "bn_b2"):
        np.testing.assert_array_equal(value(model, f"{name}/gamma"), 0.0)
    for name in ("bn_a1", "bn_a2", "bn_proj2"):
        np.testing.assert_array_equal(value(model, f"{name}/gamma"), 1.0)
    kinit.initialize(model, seed=0)
    np.testing.assert_array_equal(value(model, "bn_b1/gamma"), 1.0)


def test_a_policy_can_be_one_scheme_or_a_map_with_auto_as_fallback():
    inputs = keras.Input((32,))
    h = layers.Dense(64, activation="relu", name="first")(inputs)
    h = layers.Dense(64, activation="relu", name="second")(h)
    h = layers.Dense(64, activation="relu", name="frozen")(h)
    model = keras.Model(inputs, layers.Dense(4, name="head")(h))

    rows = rows_by_weight(kinit.initialize(model, "glorot_normal", seed=0))
    assert all(isinstance(rows[(p, "kernel")].initializer, kinit.GlorotNormal) for p in ("first", "head"))
    assert rows[("first", "bias")].scheme == "zeros"

    fill(model)
    policy = {
        "first": kinit.HeUniform,
        keras.layers.Dense: "auto",
        r".*/bias": kinit.Constant(0.5),
    }
    rows = rows_by_weight(kinit.initialize(model, {"frozen": None, **policy}, seed=0))
    assert isinstance(rows[("first", "kernel")].initializer, kinit.HeUniform)
    assert rows[("second", "kernel")].scheme.startswith("He normal")
    assert rows[("frozen", "kernel")].scheme == "unchanged"
    np.testing.assert_array_equal(value(model, "frozen/kernel"), 3.0)
    np.testing.assert_array_equal(value(model, "second/bias"), 0.5)
    assert_moments(value(model, "first/kernel"), 2 / 32, UNIFORM_KURTOSIS)

    with pytest.raises(ValueError, match="unknown policy or initializer name 'no_such_scheme'"):
        kinit.initialize(model, "no_such_scheme")


def test_policy_names_are_explicit_where_snake_case_misleads():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8, name="wide")])
    report = kinit.initialize(model, "zero_init")
    assert isinstance(report[0].initializer, kinit.ZerO)
    # The automatic snake_case of "ZerO" is no name; the error lists every valid one.
    with pytest.raises(ValueError, match=r"unknown policy or initializer name 'zer_o'.*'zero_init'.*'zeros'") as error:
        kinit.initialize(model, "zer_o")
    assert all(repr(name) in str(error.value) for name in ("he_normal", "xavier_uniform", "delta_orthogonal"))
    with pytest.raises(ValueError, match="keys of a `policy` dict"):
        kinit.initialize(model, {3: "he_normal"})


def test_an_int_seed_is_reproducible_and_gives_every_layer_its_own_stream():
    def model():
        return keras.Sequential([keras.Input((64,))] + [layers.Dense(64, activation="relu") for _ in range(4)])

    first, second = model(), model()
    kinit.initialize(first, seed=5)
    kinit.initialize(second, seed=5)
    kernels = [w.numpy() for w in first.weights if w.name == "kernel"]
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for i in range(len(kernels)):
        for j in range(i + 1, len(kernels)):
            assert not np.allclose(kernels[i], kernels[j])
    kinit.initialize(second, seed=6)
    assert not np.allclose(first.weights[0].numpy(), second.weights[0].numpy())


def test_bad_arguments_and_unbuilt_models_fail_clearly():
    with pytest.raises(ValueError, match="not built"):
        kinit.initialize(keras.Sequential([layers.Dense(3)]))
    model = keras.Sequential([keras.Input((3,)), layers.Dense(3)])
    with pytest.raises(ValueError, match="relu_bias"):
        kinit.initialize(model, relu_bias=-1.0)
    with pytest.raises(ValueError, match="seed"):
        kinit.initialize(model, seed="x")


def test_a_scheme_that_cannot_fill_a_later_weight_leaves_the_model_unchanged():
    inputs = keras.Input((8,))
    h = layers.Reshape((8, 1))(layers.Dense(8, name="dense")(inputs))
    model = keras.Model(inputs, layers.Conv1D(4, 3, name="conv")(h))
    fill(model)
    with pytest.raises(ValueError, match=r"Identity: cannot fill a kernel of shape \(3, 1, 4\)"):
        kinit.initialize(model, "identity")
    for weight in model.weights:
        np.testing.assert_array_equal(weight.numpy(), 3.0, err_msg=weight.path)


def test_an_initialized_model_still_trains():
    model = mixed_model()
    kinit.initialize(model, seed=3, relu_bias=0.01)
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(64, 8, 8, 3)).astype("float32"), rng.integers(0, 500, (64, 6))]
    y = rng.integers(0, 10, 64)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    losses = model.fit(x, y, epochs=8, batch_size=64, verbose=0).history["loss"]
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_initialized_and_calibrated_models_reload_in_a_fresh_process(tmp_path, fresh_python):
    """One fresh process for both functions: each saved model loads and predicts
    the same, and an int seed gives the same weights in the new process."""
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(32, 8, 8, 3)).astype("float32"), rng.integers(0, 500, (32, 6))]
    initialized, calibrated = mixed_model(), mixed_model()
    kinit.initialize(initialized, seed=3, relu_bias=0.01)
    kinit.lsuv(calibrated, x, seed=0)
    for name, model in (("initialized", initialized), ("calibrated", calibrated)):
        model.save(tmp_path / f"{name}.keras")
        np.save(tmp_path / f"{name}.npy", model.predict_on_batch(x))
    np.savez(tmp_path / "data.npz", image=x[0], tokens=x[1])
    np.savez(tmp_path / "initial.npz", *[w.numpy() for w in initialized.weights])
    result = fresh_python(
        f"""
        import sys, keras, numpy as np
        sys.path.insert(0, {str(TESTS)!r})
        import kinit
        from test_policy import mixed_model
        folder = {str(tmp_path)!r}
        data = np.load(folder + "/data.npz")
        for name in ("initialized", "calibrated"):
            model = keras.models.load_model(f"{{folder}}/{{name}}.keras")
            np.testing.assert_allclose(model.predict_on_batch([data["image"], data["tokens"]]),
                                       np.load(f"{{folder}}/{{name}}.npy"), atol=1e-5)
        fresh = mixed_model()
        kinit.initialize(fresh, seed=3, relu_bias=0.01)
        initial = np.load(folder + "/initial.npz")
        for i, weight in enumerate(fresh.weights):
            np.testing.assert_array_equal(weight.numpy(), initial[f"arr_{{i}}"])
        print("ok")
        """
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_sums_and_concatenations_are_looked_through_to_the_nonlinearity_after_them():
    inputs = keras.Input((6, 6, 16))
    branch = layers.BatchNormalization()(layers.Conv2D(16, 3, padding="same", name="branch")(inputs))
    shortcut = layers.Conv2D(16, 1, name="projection")(inputs)
    summed = layers.ReLU()(layers.Add(name="sum")([shortcut, branch]))
    left = layers.Conv2D(16, 1, name="left")(summed)
    right = layers.Conv2D(16, 1, activation="relu", name="right")(summed)
    joined = layers.Activation("tanh")(layers.Concatenate(name="joined")([left, right]))
    mean = layers.Average()([layers.Conv2D(32, 1, name="averaged")(joined), joined])
    outputs = layers.Dense(4, name="head")(layers.Flatten()(layers.Subtract()([mean, layers.Conv2D(32, 1, name="sub")(mean)])))
    model = keras.Model(inputs, outputs)
    rows = rows_by_weight(kinit.initialize(model, seed=0))

    for path in ("branch", "projection"):
        row = rows[(path, "kernel")]
        assert row.scheme.startswith("He normal") and "'sum' then" in row.reason and "ReLU" in row.reason, row
    assert rows[("left", "kernel")].scheme.startswith("Glorot")  # tanh after the Concatenate
    assert "'joined' then" in rows[("left", "kernel")].reason
    assert rows[("right", "kernel")].scheme.startswith("He normal")  # its own ReLU comes first
    assert rows[("averaged", "kernel")].scheme.startswith("Glorot")  # Average, Subtract, Flatten, Dense: linear
    assert "linear" in rows[("averaged", "kernel")].reason
    assert rows[("sub", "kernel")].scheme.startswith("Glorot") and "Dense" in rows[("sub", "kernel")].reason
    assert_moments(value(model, "branch/kernel"), 2 / (3 * 3 * 16), NORMAL_KURTOSIS)


def test_a_policy_key_that_is_no_regular_expression_is_a_value_error_naming_it():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8, name="wide")])
    with pytest.raises(ValueError, match=r"initialize: the `policy` key '\(' is not a valid regular expression"):
        kinit.initialize(model, {"(": "he_normal"})


def test_a_policy_key_that_matches_nothing_lists_the_layers_unless_not_strict():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(8, name="wide"), layers.ReLU(name="act")])
    fill(model)
    for key in ("wdie", layers.Conv2D):  # a typo; a layer type the model lacks
        with pytest.raises(ValueError, match=r"match no layer or weight.*wide \(Dense\), act \(ReLU\).*strict=False"):
            kinit.initialize(model, {key: "he_normal"})
        np.testing.assert_array_equal(value(model, "wide/kernel"), 3.0)  # nothing was assigned
    report = kinit.initialize(model, {"wdie": "he_normal"}, strict=False)
    assert rows_by_weight(report)[("wide", "kernel")].scheme.startswith("He normal")
    # A key naming a layer without weights, or a weight path, is a match.
    kinit.initialize(model, {"act": None, r"wide/bias": kinit.Constant(0.5)})
    np.testing.assert_array_equal(value(model, "wide/bias"), 0.5)


def test_a_keras_initializer_as_policy_gets_the_einsum_axes_as_keras_hands_them_over():
    inputs = keras.Input((5, 32))
    model = keras.Model(inputs, layers.MultiHeadAttention(8, 16, name="mha")(inputs, inputs))
    kinit.initialize(model, keras.initializers.GlorotUniform(seed=0))
    # query (32, 8, 16) of "abc,cde->abde": fan_in 32, fan_out 8 · 16 (Keras counts d, e).
    assert_moments(value(model, "mha/query/kernel"), 2 / (32 + 128), UNIFORM_KURTOSIS)
    assert_moments(value(model, "mha/attention_output/kernel"), 2 / (128 + 32), UNIFORM_KURTOSIS)


def test_fixups_scalars_are_looked_through_to_the_nonlinearity():
    inputs = keras.Input((8, 8, 3))
    h = layers.Conv2D(8, 3, name="conv")(kinit.Bias(name="bias_in")(inputs))
    h = layers.ReLU(name="relu")(kinit.Scale(name="scale")(kinit.Bias(name="bias_out")(h)))
    row = rows_by_weight(kinit.initialize(keras.Model(inputs, h), seed=0))[("conv", "kernel")]
    assert row.scheme.startswith("He normal") and "'bias_out' then 'scale' then 'relu'" in row.reason


def test_each_report_has_its_own_notes():
    first, second = kinit.InitReport(), kinit.InitReport()
    first.notes.append("only mine")
    assert second.notes == [] and kinit.InitReport().notes == []
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    report = kinit.initialize(model, seed=0)
    assert report.notes == [] and report.notes is not first.notes
