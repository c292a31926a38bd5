"""kinit.residual and kinit.attention: residual sums, branches, trunks and
attention roles read from the model map, on Functional and subclassed models
(written against keras only: it runs on every backend, see test_backends.py)."""

import keras
import pytest
from keras import layers

from kinit.attention import KEY, QUERY, QUERY_OR_KEY, VALUE, attention_roles
from kinit.model_map import map_model
from kinit.residual import Residuals, is_kernel_call, residual_norms, sums

import residual_models as rm


def structure(model, x=None):
    return Residuals(map_model(model, x))


def paths(calls):
    return [call.path for call in calls]


def describe(residuals):
    """Per residual sum: (sum, [(kernel path, position)], depth m, last kernels, shortcut kernels)."""
    found = []
    for residual in residuals.sums:
        for branch in residual.branches:
            found.append((residual.call.path, [(k.path, branch.positions[k]) for k in branch.kernels], branch.depth,
                          paths(branch.last), paths(residual.shortcut.kernels)))
    return found


@pytest.mark.parametrize("build, attn, fc, proj", [
    (rm.gpt_functional, "attn_0/", "fc_0", "proj_0"),
    (rm.gpt_subclassed, "block_0/attn/", "block_0/fc", "block_0/proj"),
])
def test_a_pre_norm_transformer_has_one_trunk_of_two_sums_per_block(build, attn, fc, proj):
    model = build()
    residuals = structure(model, rm.token_ids())
    assert len(residuals.trunks) == 1 and len(residuals.trunk()) == 4
    attention, mlp = describe(residuals)[:2]
    # The attention's q/k/v sit first on the branch, the output projection second and last.
    assert attention[1] == [(attn + "query", 1), (attn + "key", 1), (attn + "value", 1),
                            (attn + "attention_output", 2)]
    assert attention[2:] == (2, [attn + "attention_output"], [])
    assert mlp[1:] == ([(fc, 1), (proj, 2)], 2, [proj], [])
    # Each sum follows the one before it: the shortcut descends from it.
    trunk = residuals.trunk()
    assert [residual.previous for residual in trunk] == [None] + trunk[:-1]
    assert residuals.trunk_of(trunk[2]) is trunk


def test_the_sums_of_a_post_norm_model_form_a_trunk_through_the_norms_and_alpha():
    residuals = structure(rm.deepnorm_functional(blocks=3))
    assert [len(trunk) for trunk in residuals.trunks] == [6]
    shortcut = residuals.sums[0].shortcut
    # x * alpha: the shortcut is a multiply op reading the stream, with alpha as its constant.
    assert shortcut.producer.kind == "op" and shortcut.kernels == []
    assert list(shortcut.producer.constants.values()) == [pytest.approx((2 * 3) ** 0.25)]


def test_a_resnet_places_projection_shortcuts_and_counts_branch_depth():
    residuals = structure(rm.fixup_resnet_functional(blocks=3))
    assert [len(trunk) for trunk in residuals.trunks] == [3]  # also across the projection
    assert describe(residuals) == [
        ("add_0", [("conv1_0", 1), ("conv2_0", 2)], 2, ["conv2_0"], []),
        ("add_1", [("conv1_1", 1), ("conv2_1", 2)], 2, ["conv2_1"], []),
        ("add_2", [("conv1_2", 1), ("conv2_2", 2)], 2, ["conv2_2"], ["down_2"]),
    ]
    model_map = residuals.model_map
    down = model_map.record(model_map.model.get_layer("down_2"))
    (placement,) = residuals.placements(down)
    assert not placement.branch.residual and placement.branch.sum is residuals.sums[2]
    stem = residuals.placements(model_map.record(model_map.model.get_layer("stem")))[0]
    assert stem.branch is None
    assert paths(residuals.outputs_kernels()) == ["fc"]


def test_a_sum_written_inside_a_custom_layer_of_a_subclassed_model_is_found():
    model = rm.bottleneck_subclassed(blocks=2)
    residuals = structure(model, rm.images())
    assert [residual.call.path for residual in residuals.sums] == ["block_0/add", "block_1/add"]
    assert describe(residuals)[1] == ("block_1/add", [("block_1/conv1", 1), ("block_1/conv2", 2),
                                                      ("block_1/conv3", 3)], 3, ["block_1/conv3"], [])
    assert len(residuals.trunks) == 1


def test_embedding_sums_without_a_fork_or_a_kernel_are_no_residual_sums():
    # Token + position embedding of two inputs: the inputs share no ancestor.
    ids, positions = keras.Input((4,), dtype="int32"), keras.Input((4,), dtype="int32")
    x = layers.Embedding(10, 8)(ids) + layers.Embedding(4, 8)(positions)
    # A branch without kernel layers (an embedding read from the stream).
    x = x + layers.Embedding(10, 8, name="reads_stream")(keras.ops.cast(x[..., 0], "int32"))
    h = layers.Dense(8, name="body")(x)
    model = keras.Model([ids, positions], x + h)
    model_map = map_model(model)
    assert len(sums(model_map)) == 3
    residuals = Residuals(model_map)
    assert [paths(branch.kernels) for branch in residuals.residual_branches()] == [["body"]]
    assert len(residuals.trunk()) == 1


def test_a_nested_residual_places_its_layers_in_the_innermost_branch():
    inputs = keras.Input((8,))
    inner = inputs + layers.Dense(8, name="inner")(layers.Dense(8, activation="relu", name="inner_first")(inputs))
    outer = inputs + layers.Dense(8, name="outer")(inner)
    residuals = structure(keras.Model(inputs, outer))
    by_sum = {residual.call.path: residual for residual in residuals.sums}
    inner_branch, outer_branch = by_sum["add"].branches[0], by_sum["add_1"].branches[0]
    assert paths(outer_branch.kernels) == ["inner_first", "inner", "outer"] and outer_branch.depth == 3
    # The last layer of the outer branch is found without crossing the inner sum.
    assert paths(outer_branch.last) == ["outer"] and paths(inner_branch.last) == ["inner"]
    model_map = residuals.model_map
    placement = residuals.placements(model_map.record(model_map.model.get_layer("inner")))[0]
    assert placement.branch is inner_branch and placement.is_last
    # The outer shortcut is the input, not the inner sum: two trunks of one sum each.
    assert sorted(len(trunk) for trunk in residuals.trunks) == [1, 1]


def test_cross_attention_branches_hold_their_key_and_value_projections_not_the_encoder():
    residuals = structure(rm.encoder_decoder())
    assert sorted(len(trunk) for trunk in residuals.trunks) == [4, 6]
    cross = next(residual for residual in residuals.sums
                 if any("dec_cross_0" in call.path for call in residual.branches[0].kernels))
    kernels = paths(cross.branches[0].kernels)
    assert kernels == ["dec_cross_0/query", "dec_cross_0/key", "dec_cross_0/value", "dec_cross_0/attention_output"]
    assert not any(call.path.startswith("enc_") for call in cross.branches[0].calls)


def test_a_wrapped_layer_is_placed_where_its_wrapper_runs():
    inputs = keras.Input((4, 8))
    h = layers.TimeDistributed(layers.Dense(8, name="inner"), name="wrapped")(
        layers.Dense(8, activation="relu", name="first")(inputs))
    residuals = structure(keras.Model(inputs, inputs + h))
    (branch,) = residuals.residual_branches()
    assert paths(branch.kernels) == ["first", "wrapped"] and paths(branch.last) == ["wrapped"]
    model_map = residuals.model_map
    inner = model_map.record(model_map.model.get_layer("wrapped").layer)
    (placement,) = residuals.placements(inner)
    assert placement.branch is branch and placement.is_last and placement.position == 2


def test_attention_roles_come_from_the_attention_op_or_the_softmax():
    inputs = keras.Input((5, 8))
    fused = layers.MultiHeadAttention(2, 4, name="fused")(inputs, inputs)
    scores = layers.MultiHeadAttention(2, 4, dropout=0.1, name="scores")(fused, fused)
    model_map = map_model(keras.Model(inputs, scores))
    roles = {call.path: role for call, (role, _) in attention_roles(model_map.calls, is_kernel_call).items()}
    assert roles == {
        "fused/query": QUERY, "fused/key": KEY, "fused/value": VALUE,
        # With dropout Keras computes the scores itself: query and key are not told apart.
        "scores/query": QUERY_OR_KEY, "scores/key": QUERY_OR_KEY, "scores/value": VALUE,
    }
    attention_op = next(call for call in model_map.calls if call.path == "fused/dot_product_attention")
    assert {name: paths(calls) for name, calls in attention_op.arguments.items()} == {
        "query": ["fused/query"], "key": ["fused/key"], "value": ["fused/value"]}


class OpsAttention(layers.Layer):
    """Attention written with ops: softmax(q kᵀ) v, then an output projection."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.q, self.k = layers.Dense(8, name="q"), layers.Dense(8, name="k")
        self.v, self.o = layers.Dense(8, name="v"), layers.Dense(8, name="o")

    def call(self, x):
        scores = keras.ops.matmul(self.q(x), keras.ops.transpose(self.k(x), (0, 2, 1))) * 0.35
        return x + self.o(keras.ops.matmul(keras.ops.softmax(scores), self.v(x)))


def test_attention_written_with_ops_has_its_roles_and_branch():
    inputs = keras.Input((5, 8))
    model = keras.Model(inputs, OpsAttention(name="att")(inputs))
    residuals = structure(model)
    (branch,) = residuals.residual_branches()
    roles = {call.path: role for call, (role, _) in attention_roles(branch.calls, is_kernel_call).items()}
    assert roles == {"att/q": QUERY_OR_KEY, "att/k": QUERY_OR_KEY, "att/v": VALUE}
    assert paths(branch.last) == ["att/o"] and branch.depth == 2


def test_the_functions_other_modules_use_keep_working():
    model = rm.fixup_resnet_functional(blocks=2)
    model_map = map_model(model)
    assert [found.call.path for found in sums(model_map)] == ["add_0", "add_1"]
    assert residual_norms(model_map) == {}
