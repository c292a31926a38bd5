"""The eigenvalues of `callbacks.spectra`, computed by TensorFlow.

`callbacks.spectra.eigenvalues` gives the same numbers with NumPy, whose
BLAS and LAPACK run on threads of their own. Inside a training run on a
machine with few cores those threads compete with TensorFlow's for the same
cores: in ``on_epoch_end`` of a 784-256-128-10 MLP on 2 cores, NumPy's
``eigvalsh`` of the first kernel's 256 × 256 ``WᵀW`` took from 3 ms to
1.9 s (0.5 s typically on a busy machine), TensorFlow's 2 to 30 ms. So on
the TensorFlow backend the callback and `diagnose` take the eigenvalues
from here, in float64 like NumPy (they agree to ~1e-14 · λ_max).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def eigenvalues(matrix) -> np.ndarray:
    """`callbacks.spectra.eigenvalues` of `matrix` (the ``min(N, M)``
    eigenvalues of ``WᵀW``, ascending, ≥ 0), by `tf.linalg.eigvalsh`."""
    matrix = tf.convert_to_tensor(np.asarray(matrix, dtype=np.float64))
    tall = matrix.shape[0] >= matrix.shape[1]
    gram = tf.matmul(matrix, matrix, transpose_a=tall, transpose_b=not tall)
    return np.clip(tf.linalg.eigvalsh(gram).numpy(), 0.0, None)
