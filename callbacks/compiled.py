"""The probe's forward and gradient pass, compiled once and reused log after log.

Eager Keras runs a model op by op from Python, and an eager gradient tape
replays the backward pass the same way: on a small convolutional network
that doubles the cost of the probe. `CompiledPass` traces
`observe.forward_and_backward` into one `tf.function` per model and calls it
at every later log (TensorFlow backend; `jax_pass.JaxCompiledPass` does the
same with `jax.jit` on JAX).
"""

from __future__ import annotations

from typing import List, Optional

import logging

import keras
import tensorflow as tf

from kinit.keras_adapter import compiled_loss

from .layers import LayerEntry
from .observe import Pass, forward_and_backward


def compiled_pass():
    """The compiled probe pass of the active backend: `CompiledPass` on
    TensorFlow, `jax_pass.JaxCompiledPass` on JAX; None where the pass runs
    op by op (PyTorch)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return CompiledPass()
    if backend == "jax":
        from .jax_pass import JaxCompiledPass

        return JaxCompiledPass()
    return None


def pass_signature(model: keras.Model, entries: List[LayerEntry], gradients: bool, loss) -> tuple:
    """What a compiled pass depends on besides the values: the model, its
    layers, the layers observed, the switches, the compiled loss and which
    weights are trainable."""
    return (id(model), tuple(id(layer) for layer in model.layers), tuple(id(e.layer) for e in entries),
            gradients, loss, id(compiled_loss(model)), tuple(v.trainable for e in entries for _, v in e.weights))


class CompiledPass:
    """`observe.forward_and_backward`, traced and reused while the model stays the same.

    A drop-in `run` for `probe.observe`. The first call for a model runs
    eagerly: it builds what the model builds lazily (a compiled loss creates
    its metrics on first use), which a traced function must not do. The second
    traces; what the trace captured (which layer ran when, which weights have
    a gradient) is recorded with it. It is traced again only when the model,
    its layers, its compiled loss (`compile` again), the switches or which
    weights are trainable change. It is traced without autograph (converting
    the code costs more than the trace). If tracing or running fails (a custom
    ``call`` that needs NumPy values or Python control flow on tensors, a loss
    that fails on these targets), every later call runs eagerly, which reports
    what fails as `observe` always did.
    """

    def __init__(self):
        self._signature = None
        self._function = None
        self._layout: dict = {}
        self._eager = False

    def __call__(self, model: keras.Model, entries: List[LayerEntry], x, y, gradients: bool, loss,
                 sample_weight=None) -> Pass:
        signature = pass_signature(model, entries, gradients, loss)
        if self._eager or signature != self._signature:
            self._signature, self._function = signature, None
            return forward_and_backward(model, entries, x, y, gradients, loss, sample_weight)
        try:
            if self._function is None:
                self._function = self._trace(model, entries, x, y, gradients, loss, sample_weight)
            activations, grads = self._function()
        except Exception as error:  # the eager pass reports (or raises) what fails
            logging.getLogger("kinit.callbacks").debug("InitDiagnostics: the probe runs eagerly: %r", error)
            self._eager = True
            return forward_and_backward(model, entries, x, y, gradients, loss, sample_weight)
        return self._unflatten(activations, grads)

    def _trace(self, model, entries, x, y, gradients: bool, loss, sample_weight):
        x, y, sample_weight = (keras.tree.map_structure(tf.convert_to_tensor, data) if data is not None else None
                               for data in (x, y, sample_weight))
        layout = self._layout

        def run():
            outputs, trainable, grads, failure = forward_and_backward(model, entries, x, y, gradients, loss,
                                                                      sample_weight)
            if failure is not None:
                raise failure
            layout["outputs"] = [(path, len(tensors)) for path, tensors in outputs]
            layout["trainable"] = trainable
            layout["kept"] = [i for i, g in enumerate(grads or []) if g is not None]
            return ([t for _, tensors in outputs for t in tensors],
                    [tf.convert_to_tensor(grads[i]) for i in layout["kept"]])  # dense, like IndexedSlices read

        function = tf.function(run, autograph=False)
        function.get_concrete_function()  # trace now, so that a failure falls back at once
        return function

    def _unflatten(self, activations: list, grads: list) -> Pass:
        tensors = iter(activations)
        outputs = [(path, [next(tensors) for _ in range(count)]) for path, count in self._layout["outputs"]]
        trainable = self._layout["trainable"]
        full: Optional[list] = None
        if trainable is not None:
            full = [None] * len(trainable)
            for index, gradient in zip(self._layout["kept"], grads):
                full[index] = gradient
        return outputs, trainable, full, None
