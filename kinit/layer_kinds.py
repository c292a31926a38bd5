"""What kinit knows about each kind of Keras layer and op, in one place.

Which layers normalize, only add noise, resample, merge; which convolutions
store their kernels transposed or depthwise (and so how their fans and their
unit axis are read); which layers LSUV can calibrate; and which ops between
layers (``x + y``, ``keras.ops.reshape``) act like which layers. The model
map, the auto policy, LSUV and the diagnostics all read these tables.
"""

from __future__ import annotations

import keras

from kinit.scalars import Bias, Scale

#: Normalization layers with a learned scale (γ) and, but for RMS, shift (β).
NORMALIZATION = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
    keras.layers.RMSNormalization,
)

#: Layers that normalize or only add noise.
NORMALIZATION_OR_NOISE = NORMALIZATION + (
    keras.layers.UnitNormalization,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)

#: Layers that pool, pad, crop or reshape: a nonlinearity after them acts
#: on values they pass on.
RESAMPLING = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
    keras.layers.Cropping1D,
    keras.layers.Cropping2D,
    keras.layers.Cropping3D,
    keras.layers.Reshape,
    keras.layers.Flatten,
)

#: Fixup's scalar multiplier and bias (one number for every unit): a
#: nonlinearity after them acts on the values they pass on.
SCALARS = (Scale, Bias)

#: Layers looked through to the next layer when searching for the nonlinearity.
PASS_THROUGH = NORMALIZATION_OR_NOISE + RESAMPLING + SCALARS

#: Merges looked through too: the nonlinearity after them acts on each input's
#: values (Concatenate) or on their sum (residual connections).
MERGES = (keras.layers.Concatenate, keras.layers.Add, keras.layers.Subtract, keras.layers.Average)

#: Merges that add their inputs: residual connections.
SUMS = (keras.layers.Add,)

#: Ops (by class name) that act like `RESAMPLING` layers: they move or select
#: values without changing them.
PASS_THROUGH_OPS = (
    "Reshape", "Transpose", "ExpandDims", "Squeeze", "Flatten", "GetItem", "Cast", "ConvertToTensor",
    "MaxPool", "AveragePool", "Pad", "Tile", "Repeat", "Moveaxis", "Swapaxes",
)
#: Ops that merge like `MERGES`: a nonlinearity after them acts on each input.
MERGE_OPS = ("Add", "Subtract", "Concatenate")
#: Ops that add their inputs: residual connections written ``x + f(x)``.
SUM_OPS = ("Add",)

TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
CONVOLUTIONS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)

#: Weights that carry a layer's linear map (a single-scheme policy applies to these).
KERNEL_WEIGHTS = ("kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel", "embeddings")

#: Layers whose output is linear in one kernel, so scaling it scales the
#: output: what LSUV calibrates.
LINEAR_IN_KERNEL = (keras.layers.Dense, keras.layers.EinsumDense) + CONVOLUTIONS + TRANSPOSED + DEPTHWISE + SEPARABLE

#: Layers whose kernel rows (the input-unit axis) are read per input unit:
#: axis -2 of the kernel, or -1 for `TRANSPOSED` ((…, out, in)).
READS_UNITS_BY_ROW = (keras.layers.Dense,) + CONVOLUTIONS + DEPTHWISE + TRANSPOSED

#: Wrappers and recurrent layers: their sublayers run inside them (per time
#: step, per direction), in parallel rather than one after another.
RUNS_SUBLAYERS_INSIDE = (keras.layers.Wrapper, keras.layers.Bidirectional, keras.layers.RNN)


def kernel_layout(layer, weight_name: str) -> str:
    """The `kinit.fans` layout of the weight `weight_name` of `layer`."""
    if isinstance(layer, keras.layers.EinsumDense):
        return layer.equation
    if isinstance(layer, TRANSPOSED):
        return "transposed"
    if isinstance(layer, DEPTHWISE) or (isinstance(layer, SEPARABLE) and weight_name == "depthwise_kernel"):
        return "depthwise"
    return "standard"


def units_axis(layer) -> int:
    """The axis of `layer`'s kernel that indexes its output units."""
    return -2 if isinstance(layer, TRANSPOSED) else -1


def input_units_axis(layer) -> int:
    """The axis of `layer`'s kernel that indexes its input units (channels)."""
    return -1 if isinstance(layer, TRANSPOSED) else -2


def calibrated_kernel_name(layer) -> str:
    """The kernel LSUV scales: the pointwise one of a separable convolution."""
    return "pointwise_kernel" if isinstance(layer, SEPARABLE) else "kernel"


def is_float(weight) -> bool:
    """Whether `weight` holds floats (re-initializing integer counters makes no sense)."""
    return "float" in str(weight.dtype)
