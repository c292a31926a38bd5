"""kinit: weight initialization for Keras you can choose, check and see.

Every scheme is a `keras.initializers.Initializer` registered for
serialization under the ``kinit>`` prefix, so models that use them survive
``model.save()`` / ``keras.models.load_model()`` once ``import kinit`` has
run, and ``keras.initializers.get("kinit>HeNormal")`` works.
"""

from kinit.base import KinitInitializer, RandomInitializer
from kinit.constant import Constant, Ones, Zeros
from kinit.convolution_aware import ConvolutionAware
from kinit.fans import KERNEL_LAYOUTS, compute_fans
from kinit.gains import calculate_gain
from kinit.identity import Dirac, Identity
from kinit.lsuv import LsuvReport, LsuvRow, lsuv
from kinit.orthogonal import ConvolutionOrthogonal, DeltaOrthogonal, Orthogonal
from kinit.policy import InitReport, InitRow, initialize
from kinit.random import RandomNormal, RandomUniform, ScaledNormal, TruncatedNormal
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
    "lsuv",
    "LsuvReport",
    "LsuvRow",
    "mup",
]
