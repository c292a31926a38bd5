"""Small residual networks and transformers for the residual-structure and
recipe tests, each as a Functional and as a subclassed model (keras only)."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

import kinit

VOCAB, SEQ, WIDTH, HEADS = 64, 8, 32, 4


# A GPT-style decoder: token embedding, pre-norm blocks of MultiHeadAttention
# and a two-layer MLP, a final norm and a head. ---------------------------------

def gpt_functional(blocks=2, width=WIDTH, heads=HEADS, name="gpt"):
    ids = keras.Input((SEQ,), dtype="int32", name="ids")
    x = layers.Embedding(VOCAB, width, name="tok")(ids)
    for i in range(blocks):
        h = layers.LayerNormalization(name=f"ln1_{i}")(x)
        h = layers.MultiHeadAttention(heads, width // heads, name=f"attn_{i}")(h, h, use_causal_mask=True)
        x = layers.Add(name=f"add_attn_{i}")([x, h])
        h = layers.LayerNormalization(name=f"ln2_{i}")(x)
        h = layers.Dense(4 * width, activation="gelu", name=f"fc_{i}")(h)
        x = x + layers.Dense(width, name=f"proj_{i}")(h)
    x = layers.LayerNormalization(name="ln_f")(x)
    return keras.Model(ids, layers.Dense(VOCAB, use_bias=False, name="head")(x), name=name)


class Block(layers.Layer):
    """A pre-norm block; both residual sums written ``x + f(x)``."""

    def __init__(self, width, heads, **kwargs):
        super().__init__(**kwargs)
        self.ln1 = layers.LayerNormalization(name="ln1")
        self.attn = layers.MultiHeadAttention(heads, width // heads, name="attn")
        self.ln2 = layers.LayerNormalization(name="ln2")
        self.fc = layers.Dense(4 * width, activation="gelu", name="fc")
        self.proj = layers.Dense(width, name="proj")

    def call(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, use_causal_mask=True)
        return x + self.proj(self.fc(self.ln2(x)))


class GPT(keras.Model):
    def __init__(self, blocks=2, width=WIDTH, heads=HEADS, **kwargs):
        super().__init__(**kwargs)
        self.tok = layers.Embedding(VOCAB, width, name="tok")
        self.blocks = [Block(width, heads, name=f"block_{i}") for i in range(blocks)]
        self.ln_f = layers.LayerNormalization(name="ln_f")
        self.head = layers.Dense(VOCAB, use_bias=False, name="head")

    def call(self, ids):
        x = self.tok(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def token_ids(n=2):
    return np.random.default_rng(0).integers(0, VOCAB, size=(n, SEQ)).astype("int32")


def gpt_subclassed(blocks=2):
    model = GPT(blocks, name="gpt_sub")
    model(token_ids())
    return model


# Post-norm DeepNorm blocks: x = LN(alpha * x + f(x)). ---------------------------

def deepnorm_functional(blocks=2, width=WIDTH, heads=HEADS, alpha=None):
    alpha = (2 * blocks) ** 0.25 if alpha is None else alpha
    ids = keras.Input((SEQ,), dtype="int32")
    x = layers.Embedding(VOCAB, width, name="tok")(ids)
    for i in range(blocks):
        h = layers.MultiHeadAttention(heads, width // heads, name=f"attn_{i}")(x, x)
        x = layers.LayerNormalization(name=f"ln1_{i}")(x * alpha + h)
        h = layers.Dense(width, name=f"proj_{i}")(layers.Dense(4 * width, activation="relu", name=f"fc_{i}")(x))
        x = layers.LayerNormalization(name=f"ln2_{i}")(x * alpha + h)
    return keras.Model(ids, layers.Dense(VOCAB, name="head")(x), name="deepnorm")


# An encoder-decoder: post-norm encoder blocks (2 sums), decoder blocks with
# self-attention, cross-attention and an MLP (3 sums). ---------------------------

def encoder_decoder(encoder_blocks=2, decoder_blocks=2, width=16, heads=2):
    source = keras.Input((SEQ,), dtype="int32", name="source")
    target = keras.Input((SEQ,), dtype="int32", name="target")
    x = layers.Embedding(VOCAB, width, name="enc_tok")(source)
    for i in range(encoder_blocks):
        x = layers.LayerNormalization(name=f"enc_ln1_{i}")(
            x + layers.MultiHeadAttention(heads, width // heads, name=f"enc_attn_{i}")(x, x))
        h = layers.Dense(width, name=f"enc_proj_{i}")(layers.Dense(2 * width, activation="relu", name=f"enc_fc_{i}")(x))
        x = layers.LayerNormalization(name=f"enc_ln2_{i}")(x + h)
    memory = x
    y = layers.Embedding(VOCAB, width, name="dec_tok")(target)
    for i in range(decoder_blocks):
        y = layers.LayerNormalization(name=f"dec_ln1_{i}")(
            y + layers.MultiHeadAttention(heads, width // heads, name=f"dec_self_{i}")(y, y, use_causal_mask=True))
        y = layers.LayerNormalization(name=f"dec_ln2_{i}")(
            y + layers.MultiHeadAttention(heads, width // heads, name=f"dec_cross_{i}")(y, memory))
        h = layers.Dense(width, name=f"dec_proj_{i}")(layers.Dense(2 * width, activation="relu", name=f"dec_fc_{i}")(y))
        y = layers.LayerNormalization(name=f"dec_ln3_{i}")(y + h)
    return keras.Model([source, target], layers.Dense(VOCAB, name="head")(y), name="seq2seq")


# ResNets without normalization, with Fixup's scalars. ----------------------------

def fixup_resnet_functional(channels=16, blocks=3, classes=10):
    """Basic blocks (m = 2) with identity shortcuts, then one downsampling
    block whose shortcut is a 1x1 projection."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(channels, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = layers.ReLU(name="stem_relu")(kinit.Bias(name="stem_bias")(x))
    for i in range(blocks):
        last = i == blocks - 1
        stride = 2 if last else 1
        out_channels = 2 * channels if last else channels
        h = layers.Conv2D(out_channels, 3, strides=stride, padding="same", use_bias=False, name=f"conv1_{i}")(
            kinit.Bias(name=f"bias1a_{i}")(x))
        h = layers.ReLU(name=f"relu1_{i}")(kinit.Bias(name=f"bias1b_{i}")(h))
        h = layers.Conv2D(out_channels, 3, padding="same", use_bias=False, name=f"conv2_{i}")(
            kinit.Bias(name=f"bias2a_{i}")(h))
        h = kinit.Bias(name=f"bias2b_{i}")(kinit.Scale(name=f"scale_{i}")(h))
        shortcut = layers.Conv2D(out_channels, 1, strides=stride, use_bias=False, name=f"down_{i}")(x) if last else x
        x = layers.ReLU(name=f"relu2_{i}")(layers.Add(name=f"add_{i}")([h, shortcut]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(classes, name="fc")(kinit.Bias(name="fc_bias")(x))
    return keras.Model(inputs, outputs, name="fixup_resnet")


class Bottleneck(layers.Layer):
    """Fixup's bottleneck block (m = 3), the sum written ``out + x``."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = layers.Conv2D(channels // 4, 1, use_bias=False, name="conv1")
        self.conv2 = layers.Conv2D(channels // 4, 3, padding="same", use_bias=False, name="conv2")
        self.conv3 = layers.Conv2D(channels, 1, use_bias=False, name="conv3")
        self.scale = kinit.Scale(name="scale")
        self.bias = kinit.Bias(name="bias")

    def call(self, x):
        out = keras.ops.relu(self.conv1(x))
        out = keras.ops.relu(self.conv2(out))
        out = self.bias(self.scale(self.conv3(out)))
        return keras.ops.relu(out + x)


class BottleneckNet(keras.Model):
    def __init__(self, channels=32, blocks=4, classes=10, **kwargs):
        super().__init__(**kwargs)
        self.stem = layers.Conv2D(channels, 3, padding="same", name="stem")
        self.blocks = [Bottleneck(channels, name=f"block_{i}") for i in range(blocks)]
        self.pool = layers.GlobalAveragePooling2D(name="pool")
        self.fc = layers.Dense(classes, name="fc")

    def call(self, x):
        x = keras.ops.relu(self.stem(x))
        for block in self.blocks:
            x = block(x)
        return self.fc(self.pool(x))


def images(n=2):
    return np.zeros((n, 8, 8, 3), "float32")


def bottleneck_subclassed(blocks=4):
    """Built by a call on data: map and initialize it with ``x=images()``."""
    model = BottleneckNet(blocks=blocks, name="bottleneck_net")
    model(images())
    return model
