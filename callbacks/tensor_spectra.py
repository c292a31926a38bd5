"""The eigenvalues of `kinit.callbacks.spectra`, computed by TensorFlow.

`kinit.callbacks.spectra.eigenvalues` gives the same numbers with NumPy, whose
BLAS and LAPACK run on threads of their own. Inside a training run on a
machine with few cores those threads compete with TensorFlow's for the same
cores: in ``on_epoch_end`` of a 784-256-128-10 MLP on 2 cores (busy with
other jobs), the first kernel's spectra took 541, 84, 1873 and 16 ms in
four logs with NumPy's ``eigvalsh`` (its 256 × 256 ``WᵀW``), 13, 27, 27 and
6 ms with TensorFlow's. So on
the TensorFlow backend the callback and `diagnose` take the eigenvalues
from here, in float64 like NumPy (they agree to ~1e-14 · λ_max).

TensorFlow's ``eigvalsh`` is not LAPACK's: on an idle machine NumPy's is
faster for large matrices. On the same 2 cores under load (load average
5), for a 2n × n matrix: TensorFlow 0.08, 0.46 and 4.0 s at n = 512, 1024
and 2048; NumPy on one BLAS thread 0.05, 0.28 and 2.5 s; NumPy on its
default two threads 0.06 to 0.5, 0.7 to 1.4 and 10 s.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def eigenvalues(matrix) -> np.ndarray:
    """`kinit.callbacks.spectra.eigenvalues` of `matrix` (the ``min(N, M)``
    eigenvalues of ``WᵀW``, ascending, ≥ 0), by `tf.linalg.eigvalsh`."""
    matrix = tf.convert_to_tensor(np.asarray(matrix, dtype=np.float64))
    tall = matrix.shape[0] >= matrix.shape[1]
    gram = tf.matmul(matrix, matrix, transpose_a=tall, transpose_b=not tall)
    return np.clip(tf.linalg.eigvalsh(gram).numpy(), 0.0, None)
