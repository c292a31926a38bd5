"""Which processes of a distributed run compute and write the diagnostics.

Every worker of a multi-worker run holds the same weights, so one of them
logging is enough, and several writing into one `log_dir` would interleave
duplicate event files. Only the process that writes summaries by its
framework's convention writes:

* TensorFlow: the model's `tf.distribute` strategy's
  ``extended.should_save_summary`` (the chief of a
  `MultiWorkerMirroredStrategy`: the task of type ``chief``, or worker 0
  when the cluster has none; every single-worker strategy is its own chief);
* JAX: process 0 (`jax.process_index`) of a multi-process run;
* PyTorch: rank 0 when `torch.distributed` is initialized.

On TensorFlow and PyTorch the other processes compute nothing at all: the
diagnostics there run no collective operation, never wait for another
worker, and so no worker can block one that fails to write. A multi-process
JAX computation over arrays that span processes must run in every process
(XLA's programs are SPMD), so there every process computes and process 0
alone writes.
"""

from __future__ import annotations

import keras


def writes_here(model) -> bool:
    """Whether this process writes the diagnostics of `model` (see the module docstring)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
        return bool(strategy.extended.should_save_summary)
    if backend == "jax":
        import jax

        return jax.process_index() == 0
    if backend == "torch":
        import torch.distributed

        return not (torch.distributed.is_available() and torch.distributed.is_initialized()) \
            or torch.distributed.get_rank() == 0
    return True


def computes_here(model) -> bool:
    """Whether this process computes the diagnostics of `model`: the one that
    writes them, and on JAX every process."""
    return keras.backend.backend() == "jax" or writes_here(model)
