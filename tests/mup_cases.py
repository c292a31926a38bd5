"""Models and checks shared by tests/test_mup.py and its fresh-process runs.

Everything here uses `keras.ops` only, so the same checks run on the
TensorFlow, JAX and PyTorch backends (``run_python(..., backend=...)``
imports this module with ``sys.path.insert(0, "tests")``).
"""

from __future__ import annotations

import math

import keras
import numpy as np

import kinit

#: Keras's Adam defaults.
BETA_2, EPSILON = 0.999, 1e-7


def mlp(width, hidden=None, readout=True, inputs=12, classes=3, bias=True):
    """Inputs → Dense(width, relu) → Dense(hidden or width, relu) → readout(classes)."""
    out = kinit.mup.Readout(classes, use_bias=bias) if readout else keras.layers.Dense(classes, use_bias=bias)
    return keras.Sequential([
        keras.Input((inputs,)),
        keras.layers.Dense(width, activation="relu", use_bias=bias),
        keras.layers.Dense(hidden or width, activation="relu", use_bias=bias),
        out,
    ])


def transformer(d_model, heads=2, vocab=40, seq=6, attention=None):
    """Embedding → attention block → feed-forward block → Readout, from Keras layers."""
    attention = attention or kinit.mup.MultiHeadAttention
    tokens = keras.Input((seq,), dtype="int32")
    x = keras.layers.Embedding(vocab, d_model)(tokens)
    a = attention(heads, d_model // heads)(x, x)
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, a]))
    h = keras.layers.Dense(4 * d_model, activation="gelu")(x)
    h = keras.layers.Dense(d_model)(h)
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, h]))
    return keras.Model(tokens, kinit.mup.Readout(vocab)(x))


def rectangular(readout):
    """An MLP whose two widths grow at different rates: 16 → 64 and 16 → 256."""
    model = mlp(64, 256, readout=readout)
    kinit.mup.set_base_shapes(model, mlp(16, 16, readout=readout), mlp(32, 32, readout=readout))
    kinit.initialize(model, policy="mup", seed=0)
    return model


#: The paper's Table 3 (Table 8 for a Readout) for `rectangular`, written out
#: by hand: layer order dense, dense bias, dense_1, dense_1 bias, readout, bias.
#: m_in / m_out per variable: dense (1 / 4), dense_1 (4 / 16), readout (16 / 1).
EXPECTED_FACTORS = {
    ("adam", True): [1.0, 1.0, 1 / 4, 1.0, 1.0, 1.0],
    ("adam", False): [1.0, 1.0, 1 / 4, 1.0, 1 / 16, 1.0],
    ("sgd", True): [4.0, 4.0, 16 / 4, 16.0, 16.0, 1.0],
    ("sgd", False): [4.0, 4.0, 16 / 4, 16.0, 1 / 16, 1.0],
}


def expected_step(family: str, lr: float, factor: float, gradient: float) -> float:
    """The first step of Keras's Adam / SGD on a constant gradient, in float64."""
    if family == "sgd":
        return -lr * factor * gradient
    root = math.sqrt(1.0 - BETA_2)
    return -lr * factor * root * gradient / (root * abs(gradient) + EPSILON)


def check_step_sizes(stateless: bool = False) -> list:
    """One step from a constant gradient; every variable's change against the table.

    Returns the rows ``(optimizer, readout, variable, measured, expected)``
    and raises AssertionError on the first mismatch.
    """
    rows = []
    for family, cls, lr in (("adam", kinit.mup.Adam, 1e-2), ("sgd", kinit.mup.SGD, 0.1)):
        for readout in (True, False):
            model = rectangular(readout)
            variables = model.trainable_variables
            optimizer = cls(learning_rate=lr)
            optimizer.build(variables)
            before = [keras.ops.convert_to_numpy(v.value).astype("float64") for v in variables]
            grads = [keras.ops.full(v.shape, 0.5, dtype=v.dtype) for v in variables]
            if stateless:
                values, _ = optimizer.stateless_apply([v.value for v in optimizer.variables], grads,
                                                      [v.value for v in variables])
                after = [keras.ops.convert_to_numpy(v).astype("float64") for v in values]
            else:
                optimizer.apply(grads, variables)
                after = [keras.ops.convert_to_numpy(v.value).astype("float64") for v in variables]
            for variable, old, new, factor in zip(variables, before, after, EXPECTED_FACTORS[family, readout]):
                measured = float(np.mean(new - old))
                expected = expected_step(family, lr, factor, 0.5)
                rows.append((family, readout, variable.path, measured, expected))
                assert np.allclose(new - old, expected, rtol=2e-5, atol=1e-9), rows[-1]
    return rows


def check_weight_decay() -> None:
    """Zero gradients: only weight decay moves the weights (Adam's update is 0)."""
    for decoupled in (False, True):
        model = rectangular(True)
        variables = model.trainable_variables
        optimizer = kinit.mup.AdamW(learning_rate=1e-2, weight_decay=0.1, decoupled_weight_decay=decoupled)
        optimizer.build(variables)
        before = [keras.ops.convert_to_numpy(v.value).astype("float64") for v in variables]
        optimizer.apply([keras.ops.zeros(v.shape, dtype=v.dtype) for v in variables], variables)
        for variable, old, factor in zip(variables, before, EXPECTED_FACTORS["adam", True]):
            new = keras.ops.convert_to_numpy(variable.value).astype("float64")
            decay = 1e-2 * 0.1 * (factor if decoupled else 1.0)
            assert np.allclose(new, old * (1.0 - decay), rtol=1e-6, atol=1e-9), (decoupled, variable.path)


def batches(count=4, rows=8, seq=6, vocab=40, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, vocab, (rows, seq)), rng.integers(0, vocab, (rows, seq))) for _ in range(count)]


def trained_transformer(width=32, steps=2):
    """A compiled μP transformer after `steps` steps (with weight decay);
    Keras's name counters are reset first, so its layers are ``dense``, …"""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = transformer(width)
    kinit.mup.set_base_shapes(model, transformer(8), transformer(16))
    kinit.initialize(model, policy="mup", seed=0)
    model.compile(optimizer=kinit.mup.AdamW(learning_rate=1e-2, weight_decay=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    for x, y in batches()[:steps]:
        model.train_on_batch(x, y)
    return model


def record_rows(model) -> list:
    return [(r.path, r.weight, r.shape, r.base_shape, r.role, r.width_mult)
            for r in kinit.mup.get_base_shapes(model)]


def continue_training(model, steps=2) -> list:
    for x, y in batches()[2 : 2 + steps]:
        model.train_on_batch(x, y)
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def check_save_load_clone(path: str) -> None:
    """Save, load (same process), continue both: same weights; clone keeps the record."""
    model = trained_transformer()
    model.save(path)
    loaded = keras.models.load_model(path)
    assert record_rows(loaded) == record_rows(model)
    for a, b in zip(continue_training(model), continue_training(loaded)):
        assert np.allclose(a, b, atol=1e-6), "a reloaded model and optimizer must continue identically"
    clone = keras.models.clone_model(loaded)
    assert record_rows(clone) == record_rows(model)
    clone.compile(optimizer=kinit.mup.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clone.train_on_batch(*batches()[0])
    assert clone.optimizer.learning_rate_factors["dense/kernel"] == 0.25
