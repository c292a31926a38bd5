"""kinit: weight initialization for Keras you can choose, check and see.

Every scheme is a `keras.initializers.Initializer` registered for
serialization under the ``kinit>`` prefix, so models that use them survive
``model.save()`` / ``keras.models.load_model()`` once ``import kinit`` has
run, and ``keras.initializers.get("kinit>HeNormal")`` works. The
TensorBoard diagnostics are in `kinit.callbacks` (imported on demand).
"""

import os as _os

# The diagnostics live in the top-level folder callbacks/, which setuptools
# installs as kinit/callbacks (package-dir). In a source checkout (tests,
# worktrees, PYTHONPATH) that folder sits beside this package: let
# ``kinit.callbacks`` find it there too.
_SOURCE_ROOT = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "callbacks")) and _os.path.isfile(
    _os.path.join(_SOURCE_ROOT, "callbacks", "__init__.py")
):
    __path__.append(_SOURCE_ROOT)

from kinit.base import KinitInitializer, RandomInitializer
from kinit.constant import Constant, Ones, Zeros
from kinit.convolution_aware import ConvolutionAware
from kinit.fans import KERNEL_LAYOUTS, compute_fans
from kinit.gains import calculate_gain
from kinit.identity import Dirac, Identity
from kinit.lsuv import LsuvReport, LsuvRow, lsuv
from kinit.model_map import ModelMap, map_model
from kinit.orthogonal import ConvolutionOrthogonal, DeltaOrthogonal, Orthogonal
from kinit.policy import InitReport, InitRow, Policy, initialize, register_policy
from kinit.random import RandomNormal, RandomUniform, ScaledNormal, TruncatedNormal
from kinit.recipes import GPT2, DeepNet, Fixup
from kinit.scalars import Bias, Scale
from kinit.sparse import Sparse
from kinit.variance import (
    FanInNormal,
    FanInUniform,
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    KaimingNormal,
    KaimingUniform,
    LecunNormal,
    LecunUniform,
    VarianceScaling,
    XavierNormal,
    XavierUniform,
)
from kinit.zero import ZerO
from kinit import mup  # registers the μP layers and optimizers for loading saved models

__version__ = "0.1.0"

__all__ = [
    "KinitInitializer",
    "RandomInitializer",
    "Constant",
    "Ones",
    "Zeros",
    "RandomNormal",
    "RandomUniform",
    "ScaledNormal",
    "TruncatedNormal",
    "VarianceScaling",
    "FanInNormal",
    "FanInUniform",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "KaimingNormal",
    "KaimingUniform",
    "LecunNormal",
    "LecunUniform",
    "XavierNormal",
    "XavierUniform",
    "Orthogonal",
    "DeltaOrthogonal",
    "ConvolutionOrthogonal",
    "ConvolutionAware",
    "Identity",
    "Dirac",
    "Sparse",
    "ZerO",
    "KERNEL_LAYOUTS",
    "calculate_gain",
    "compute_fans",
    "initialize",
    "InitReport",
    "InitRow",
    "Policy",
    "register_policy",
    "GPT2",
    "Fixup",
    "DeepNet",
    "Scale",
    "Bias",
    "map_model",
    "ModelMap",
    "lsuv",
    "LsuvReport",
    "LsuvRow",
    "mup",
]
