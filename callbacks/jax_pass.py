"""The probe's forward and gradient pass on the JAX backend.

JAX differentiates functions, not variables: the pass is a function of the
model's variable values, run inside a `keras.StatelessScope` that maps every
trainable, non-trainable and metric variable to the value given, and
differentiated with `jax.value_and_grad` with respect to the trainable
values. The model's own variables are read, never assigned: what the pass
would update (a compiled loss's trackers) stays in the scope, and the
optimizer is not involved. Layer outputs are captured (`kinit.capture`) as
the function's auxiliary result.

`jax.grad` gives every input a gradient, zeros where the loss does not
depend on it; TensorFlow and PyTorch say None there. So that a weight the
loss never reads is not reported with a zero gradient (which would read as
a vanishing one), the function's jaxpr is walked back from the loss to the
inputs it reads; a weight it does not read gets None, as on the other
backends.

`JaxCompiledPass` is the same pass under `jax.jit`, traced once per model
and reused at every later log, as `compiled.CompiledPass` is on TensorFlow.
"""

from __future__ import annotations

import logging
from typing import List

import jax
import keras
from jax.extend import core as jax_core

from kinit.capture import capturing
from kinit.keras_adapter import compiled_loss

from .layers import LayerEntry


def jax_forward_and_backward(model, entries: List[LayerEntry], x, y, gradients: bool, loss, sample_weight=None):
    """`observe.forward_and_backward` on the JAX backend (run op by op)."""
    return _StatelessPass(model, entries, gradients, loss).run(x, y, sample_weight)


class _StatelessPass:
    """The pass as a function of the variable values (see the module docstring)."""

    def __init__(self, model, entries: List[LayerEntry], gradients: bool, loss):
        self.model, self.entries, self.gradients, self.loss = model, entries, gradients, loss
        self.targets = [(entry.path, entry.layer) for entry in entries if entry.captures_outputs]
        self.layout: dict = {}
        self.read = None  # which trainable values the loss reads (None: not known yet)

    def variables(self):
        model = self.model
        return model.trainable_variables, model.non_trainable_variables, model.metrics_variables

    def values(self):
        return tuple([v.value for v in group] for group in self.variables())

    def forward(self, trainable, non_trainable, metrics, x, y, sample_weight):
        """(loss, layer outputs in call order) of the model on the given values."""
        from .observe import _loss

        mapping = [pair for group, values in zip(self.variables(), (trainable, non_trainable, metrics))
                   for pair in zip(group, values)]
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True), \
                capturing(self.targets, "output") as outputs:
            y_pred = self.model(x, training=False)
            # In the same scope, `model.losses` holds the losses this call added.
            value = _loss(self.model, x, y, y_pred, self.loss, sample_weight) if self.gradients else 0.0
        self.layout["outputs"] = [(path, len(tensors)) for path, tensors in outputs]
        return value, [tensor for _, tensors in outputs for tensor in tensors]

    def function(self):
        """The pass as one function of the values: ``(loss, outputs), grads``."""
        if not self.gradients:
            return lambda *args: (self.forward(*args), None)
        return jax.value_and_grad(self.forward, has_aux=True)

    def prepare(self, x, y, sample_weight) -> None:
        """Build, eagerly, what the model builds on first use (a compiled loss
        creates its trackers), which must not happen inside a scope or a trace;
        and find which trainable values the loss reads."""
        tracked = compiled_loss(self.model)
        if self.gradients and tracked is not None and not getattr(tracked, "built", True):
            from .observe import _loss

            _loss(self.model, x, y, self.model(x, training=False), self.loss, sample_weight)
        if self.gradients and self.read is None:
            values = self.values()
            jaxpr = jax.make_jaxpr(lambda *args: self.forward(*args)[0])(*values, x, y, sample_weight)
            self.read = _inputs_read(jaxpr.jaxpr)[:len(values[0])]

    def run(self, x, y, sample_weight, function=None):
        """Run the pass op by op, or as `function` (a compiled `function()`,
        whose failures are raised), and arrange its results as `observe.Pass`."""
        from .observe import _attempt

        if function is not None:
            if self.gradients:
                self.prepare(x, y, sample_weight)
            return self.arrange(*function(*self.values(), x, y, sample_weight))
        if self.gradients:
            _, failure = _attempt(self.prepare, x, y, sample_weight)
            if failure is not None:
                return self._forward_only(x), None, None, failure
        result, failure = _attempt(self.function(), *self.values(), x, y, sample_weight)
        if failure is not None:
            if not self.gradients:
                raise failure
            return self._forward_only(x), None, None, failure
        return self.arrange(*result)

    def arrange(self, forward, grads):
        from .observe import _call_order

        _, activations = forward
        tensors = iter(activations)
        outputs = [(path, [next(tensors) for _ in range(count)]) for path, count in self.layout["outputs"]]
        if grads is None:
            return outputs, None, None, None
        trainable = [(e, name, v) for e in _call_order(self.entries, outputs) for name, v in e.weights if v.trainable]
        index = {id(v): i for i, v in enumerate(self.model.trainable_variables)}
        picked = [grads[index[id(v)]] if id(v) in index and self.read[index[id(v)]] else None
                  for _, _, v in trainable]
        return outputs, trainable, picked, None

    def _forward_only(self, x):
        with capturing(self.targets, "output") as outputs:
            self.model(x, training=False)
        return outputs


def _inputs_read(jaxpr) -> List[bool]:
    """For each input of `jaxpr`, whether its first output depends on it.

    Walked backwards over the equations; an equation with a needed output
    needs all its inputs (so a sub-computation counts as reading all it is
    given: the answer errs towards "read", never towards "not read")."""
    needed = {id(jaxpr.outvars[0])} if not isinstance(jaxpr.outvars[0], jax_core.Literal) else set()
    for equation in reversed(jaxpr.eqns):
        if any(id(out) in needed for out in equation.outvars):
            needed.update(id(var) for var in equation.invars if not isinstance(var, jax_core.Literal))
    return [id(var) in needed for var in jaxpr.invars]


class JaxCompiledPass:
    """`jax_forward_and_backward`, compiled with `jax.jit` and reused while the
    model stays the same (a drop-in `run` for `observe.observe`).

    Traced again only when the model, its layers, its compiled loss, the
    switches or which weights are trainable change (the same signature as
    `compiled.CompiledPass`), and by `jax.jit` itself when the shapes of the
    values change. If tracing fails (a ``call`` that needs concrete values),
    every later call runs op by op, which reports what fails.
    """

    def __init__(self):
        self._signature = None
        self._pass = None
        self._function = None
        self._eager = False

    def __call__(self, model, entries: List[LayerEntry], x, y, gradients: bool, loss, sample_weight=None):
        from .compiled import pass_signature

        signature = pass_signature(model, entries, gradients, loss)
        if self._eager:
            return jax_forward_and_backward(model, entries, x, y, gradients, loss, sample_weight)
        if signature != self._signature:
            self._signature = signature
            self._pass = _StatelessPass(model, entries, gradients, loss)
            self._function = jax.jit(self._pass.function())
        try:
            return self._pass.run(x, y, sample_weight, self._function)
        except Exception as error:  # the pass op by op reports (or raises) what fails
            logging.getLogger("kinit.callbacks").debug("InitDiagnostics: the probe runs op by op: %r", error)
            self._eager = True
            return jax_forward_and_backward(model, entries, x, y, gradients, loss, sample_weight)
