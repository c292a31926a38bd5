"""kinit.lsuv: targets reached on unseen data, robustness, and the model afterwards."""

import logging
import math
import warnings

import keras
import numpy as np
import pytest
from keras import layers

import kinit

TARGET, TOL = 1.0, 0.1


def pre_activation(layer, inputs):
    """The output of `layer` without its fused activation (a linear twin)."""
    twin = type(layer).from_config({**layer.get_config(), "activation": "linear"})
    twin.build(inputs.shape)
    twin.set_weights(layer.get_weights())
    return keras.ops.convert_to_numpy(twin(inputs))


def std_and_error(values):
    """The std over all elements, and its standard error from the per-sample spread."""
    values = values.reshape(len(values), -1).astype("float64")
    per_sample = ((values - values.mean()) ** 2).mean(axis=1)
    std = math.sqrt(per_sample.mean())
    return std, per_sample.std() / math.sqrt(len(per_sample)) / (2 * std)


def chain_pre_activations(chain, x):
    """Run the layers of a chain one by one (inference mode), collecting the
    pre-activation std and its standard error of every layer that has a kernel."""
    found, h = {}, x
    for layer in chain:
        if any(w.name in ("kernel", "pointwise_kernel") for w in layer.weights):
            found[layer.name] = std_and_error(pre_activation(layer, h))
        h = layer(h, training=False)
    return found


def check_targets_on_new_batch(chain, report, x_fit, x_new):
    """Every targeted layer's pre-activation std is at the target on both batches."""
    seen, new = chain_pre_activations(chain, x_fit), chain_pre_activations(chain, x_new)
    for row in report:
        name = row.path.split("/")[-1]
        # The batch LSUV saw: the reported std is the pre-activation's.
        assert seen[name][0] == pytest.approx(row.std, rel=1e-3), name
        # A new batch: within tol, plus 5 standard errors of a two-batch difference.
        std, error = new[name]
        assert abs(std - TARGET) <= TOL * TARGET + 5 * math.sqrt(2) * error, (name, std, error)


def bad_normal(stddev):
    return keras.initializers.RandomNormal(stddev=stddev, seed=0)


def deep_mlp():
    """20 ReLU layers (10 of them in a nested block), with dropout, from stddev 0.01."""

    def dense(name):
        return layers.Dense(96, activation="relu", kernel_initializer=bad_normal(0.01), name=name)

    block = keras.Sequential([keras.Input((96,))] + [dense(f"b{i}") for i in range(10)], name="block")
    inputs = keras.Input((32,))
    h = layers.Dropout(0.5, name="dropout")(block(dense("d0")(inputs)))
    for i in range(1, 10):
        h = dense(f"d{i}")(h)
    model = keras.Model(inputs, h)
    chain = [model.get_layer("d0"), *block.layers, model.get_layer("dropout")]
    return model, chain + [model.get_layer(f"d{i}") for i in range(1, 10)]


def test_lsuv_brings_a_20_layer_relu_mlp_from_a_bad_scale_to_unit_pre_activation_std():
    model, chain = deep_mlp()
    rng = np.random.default_rng(0)
    x_fit, x_new = (rng.normal(size=(512, 32)).astype("float32") for _ in range(2))
    report = kinit.lsuv(model, x_fit, orthogonal_first=False, seed=0)
    expected_order = ["d0"] + [f"block/b{i}" for i in range(10)] + [f"d{i}" for i in range(1, 10)]
    assert [row.path for row in report] == expected_order
    assert report.converged, str(report)
    assert all(row.iterations >= 1 for row in report)  # they all started far off
    assert report.forward_passes <= 2 * len(report) + 1
    check_targets_on_new_batch(chain, report, x_fit, x_new)

    # Fused activations: the measured tensor is the pre-activation, so the
    # post-ReLU std is about √(1/2 − 1/(2π)) ≈ 0.58 of it, far from the target.
    post = x_new
    for layer in chain[: chain.index(model.get_layer("d1")) + 1]:
        post = layer(post, training=False)
    assert np.std(keras.ops.convert_to_numpy(post)) < 0.7


def small_cnn():
    inputs = keras.Input((16, 16, 3))
    big = keras.initializers.RandomNormal(stddev=10.0, seed=1)
    h = layers.Conv2D(8, 3, padding="same", kernel_initializer=big, name="c1")(inputs)
    h = layers.ReLU()(h)
    h = layers.Conv2D(16, 3, strides=2, kernel_initializer=big, name="c2")(h)
    h = layers.BatchNormalization()(h)
    h = layers.ReLU()(h)
    h = layers.SeparableConv2D(16, 3, activation="relu", pointwise_initializer=big, name="c3")(h)
    h = layers.Conv2DTranspose(8, 3, activation="tanh", kernel_initializer=big, name="c4")(h)
    h = layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, layers.Dense(10, activation="softmax", kernel_initializer=big, name="head")(h))


def test_lsuv_brings_a_small_cnn_from_a_bad_scale_to_unit_pre_activation_std():
    model = small_cnn()
    rng = np.random.default_rng(1)
    x_fit, x_new = (rng.normal(size=(128, 16, 16, 3)).astype("float32") for _ in range(2))
    report = kinit.lsuv(model, x_fit, orthogonal_first=False)
    assert [row.path for row in report] == ["c1", "c2", "c3", "c4", "head"]
    assert report.converged, str(report)
    check_targets_on_new_batch(model.layers[1:], report, x_fit, x_new)


def test_dead_and_non_finite_layers_are_reported_and_skipped():
    inputs = keras.Input((16,))
    h = layers.Dense(16, activation="relu", name="alive")(inputs)
    h = layers.Dense(16, activation="relu", kernel_initializer="zeros", name="dead")(h)
    h = layers.Dense(16, name="after_dead")(h)
    model = keras.Model(inputs, h)
    x = np.random.default_rng(2).normal(size=(64, 16)).astype("float32")
    report = kinit.lsuv(model, x, orthogonal_first=False)
    status = {row.path: (row.status, row.reason) for row in report}
    assert status["alive"][0] == "converged"
    assert status["dead"][0] == "skipped" and "dead" in status["dead"][1]
    assert status["after_dead"][0] == "skipped"  # its input is all zeros
    np.testing.assert_array_equal(model.get_layer("dead").kernel.numpy(), 0.0)

    model.get_layer("alive").kernel.assign(np.full((16, 16), np.inf, "float32"))
    report = kinit.lsuv(model, x, orthogonal_first=False)
    assert report[0].status == "skipped" and "non-finite" in report[0].reason
    assert np.isinf(model.get_layer("alive").kernel.numpy()).all()


def test_wrong_input_shape_names_the_expected_shape():
    model = keras.Sequential([keras.Input((64,)), layers.Dense(8)])
    with pytest.raises(ValueError, match=r"of shape \(None, 64\).*argument `x` holds an array of shape \(10, 32\)"):
        kinit.lsuv(model, np.zeros((10, 32), "float32"))
    with pytest.raises(ValueError, match="tol"):
        kinit.lsuv(model, np.zeros((10, 64), "float32"), tol=0.0)


def test_dict_inputs_are_matched_by_input_name_not_key_order():
    b, a = keras.Input((4,), name="b"), keras.Input((4,), name="a")
    model = keras.Model([b, a], [layers.Dense(8, name="on_b")(b), layers.Dense(8, name="on_a")(a)])
    rng = np.random.default_rng(6)
    x = {"a": 100.0 * rng.normal(size=(256, 4)), "b": 0.01 * rng.normal(size=(256, 4))}
    report = kinit.lsuv(model, {k: v.astype("float32") for k, v in x.items()}, seed=0)
    assert report.converged, str(report)
    for name in ("a", "b"):
        std = np.std(keras.ops.convert_to_numpy(model.get_layer(f"on_{name}")(x[name].astype("float32"))))
        assert abs(std - TARGET) <= TOL * TARGET * 1.01, (name, std)
    with pytest.raises(ValueError, match=r"missing \['b'\].*unexpected \['c'\]"):
        kinit.lsuv(model, {"a": x["a"], "c": x["b"]})


def test_layers_argument_seed_and_distinct_orthogonal_kernels():
    def model():
        inputs = keras.Input((32,))
        h = inputs
        for name in ("a", "b", "c"):
            h = layers.Dense(32, activation="tanh", name=name)(h)
        return keras.Model(inputs, layers.Activation("relu", name="act")(h))

    x = np.random.default_rng(3).normal(size=(256, 32)).astype("float32")
    first, second = model(), model()
    untouched = second.get_layer("c").kernel.numpy()
    report = kinit.lsuv(second, x, layers=["a", second.get_layer("b")], seed=4)
    assert [row.path for row in report] == ["a", "b"]
    np.testing.assert_array_equal(second.get_layer("c").kernel.numpy(), untouched)

    kinit.lsuv(first, x, seed=4)
    again = model()
    kinit.lsuv(again, x, seed=4)
    kernels = [first.get_layer(n).kernel.numpy() for n in "abc"]
    for name, kernel in zip("abc", kernels):
        np.testing.assert_array_equal(again.get_layer(name).kernel.numpy(), kernel)
    assert not np.allclose(kernels[0], kernels[1]) and not np.allclose(kernels[1], kernels[2])

    with pytest.raises(ValueError, match="cannot calibrate 'act'"):
        kinit.lsuv(first, x, layers=["act"])
    with pytest.raises(ValueError, match="'nope' is not one"):
        kinit.lsuv(first, x, layers=["nope"])


class Subclassed(keras.Model):
    """Layers assigned in a different order from the one they run in."""

    def __init__(self):
        super().__init__()
        self.last = layers.Dense(8, activation="tanh", kernel_initializer=bad_normal(5.0))
        self.first = layers.Dense(32, activation="relu", kernel_initializer=bad_normal(0.01))

    def call(self, x):
        return self.last(self.first(x))


def test_a_subclassed_model_is_calibrated_in_the_order_its_layers_run():
    model = Subclassed()
    rng = np.random.default_rng(4)
    x_fit, x_new = (rng.normal(size=(256, 16)).astype("float32") for _ in range(2))
    model(x_fit[:1])
    report = kinit.lsuv(model, x_fit, orthogonal_first=False)
    assert [row.path for row in report] == [model.first.name, model.last.name]
    assert report.converged
    check_targets_on_new_batch([model.first, model.last], report, x_fit, x_new)
    # A wrong shape is refused before any kernel is touched.
    kernel = model.first.kernel.numpy()
    with pytest.raises(ValueError, match=r"built for inputs of shape \(1, 16\) \(any batch size\); argument `x` holds shape \(256, 8\)"):
        kinit.lsuv(model, x_fit[:, :8])
    np.testing.assert_array_equal(model.first.kernel.numpy(), kernel)


def test_a_calibrated_model_still_trains():
    # Saving and loading in a fresh process: test_policy.py checks both functions at once.
    model = small_cnn()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 10, 64)
    kinit.lsuv(model, x, seed=0)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    losses = model.fit(x, y, epochs=8, batch_size=64, verbose=0).history["loss"]
    assert losses[-1] < losses[0]



def test_lsuv_causes_no_warnings_on_composite_and_wrapped_models(caplog):
    sequence = keras.Input((6, 8))
    wrapped = keras.Model(sequence, layers.TimeDistributed(layers.Dense(8, name="dense"), name="each")(sequence))
    attention = keras.Model(sequence, layers.MultiHeadAttention(2, 4, name="mha")(sequence, sequence))
    x = np.random.default_rng(0).normal(size=(64, 6, 8)).astype("float32")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        for model in (wrapped, attention, wrapped, attention):  # several models, one process
            assert kinit.lsuv(model, [x], seed=0).converged  # a one-element list for one input
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records] == []


def test_lsuv_reads_a_dataset_and_a_tuple_as_fit_does():
    tf = pytest.importorskip("tensorflow")
    model = keras.Sequential([keras.Input((8,)), layers.Dense(16, activation="relu"), layers.Dense(4)])
    x = np.random.default_rng(1).normal(size=(96, 8)).astype("float32")
    y = np.zeros((96, 4), "float32")
    assert kinit.lsuv(model, (x, y), seed=0).converged  # a tuple is (x, y)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    assert kinit.lsuv(model, dataset, seed=0).converged
