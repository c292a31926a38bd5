"""One look at a model: its weights, and its activations and gradients on a probe batch.

A single forward pass in inference mode (dropout off, batch normalization on
its moving statistics, so looking never changes the model) gives both the
layer outputs and the loss whose gradients are taken, with the backend's own
automatic differentiation: a `tf.GradientTape` on TensorFlow,
`jax.value_and_grad` over the model's stateless call on JAX
(`callbacks.jax_pass`), `torch.autograd.grad` on PyTorch. None of them
touches the model's variables, its optimizer or the parameters' ``.grad``.
What could not be observed is returned as plain-language notes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

import keras

from kinit.capture import capturing
from kinit.model_map import ModelMap

from .layers import LayerEntry


@dataclass
class Observation:
    """A tensor to summarize: which layer (`path`), which kind, which name, its value."""

    path: str
    kind: str
    name: str
    value: Any
    entry: LayerEntry

    @property
    def tag(self) -> str:
        return f"{self.kind}s/{self.path}/{self.name}"

    @property
    def tensor(self):
        """The value as a backend tensor (a Keras variable: the variable it wraps)."""
        return self.value.value if isinstance(self.value, keras.Variable) else self.value


#: Largest probe batch accepted: the probe's cost must stay bounded.
MAX_PROBE_EXAMPLES = 4096


def ensure_built(model: keras.Model, x) -> None:
    """Build `model` on the probe batch if nothing has built it yet."""
    if not model.built:
        model(x, training=False)


#: What one pass of the probe batch gives: the tensors each layer call
#: returned ``(path, tensors)`` in call order, the trainable ``(entry, name,
#: variable)`` in call order and their gradients (None without gradients),
#: and the exception that stopped the loss or its gradients (None if none).
Pass = Tuple[List[Tuple[str, list]], Optional[list], Optional[list], Optional[Exception]]


def observe(
    model_map: ModelMap,
    entries: List[LayerEntry],
    x,
    y=None,
    sample_weight=None,
    *,
    weights: bool = True,
    activations: bool = True,
    gradients: bool = True,
    loss=None,
    run: Optional[Callable[..., Pass]] = None,
) -> Tuple[List[Observation], List[str]]:
    """Observations in the order weights, activations, gradients; activations
    and gradients in the order the layers ran (depth order, whatever order
    a subclassed model assigned them in).

    `loss` (anything `keras.losses.get` accepts) overrides the model's
    compiled loss for the gradients; `sample_weight` weights the examples in
    it, as in `fit`. If the loss or its gradients cannot be computed, the
    weights and activations are still returned and a note says why the
    gradients are missing. `run` replaces `forward_and_backward` (same
    arguments and result), e.g. by a compiled `CompiledPass`. What the model
    map could not trace is a note too.
    """
    model = model_map.model
    notes: List[str] = list(model_map.notes)
    observations: List[Observation] = []
    if weights:
        observations += [Observation(e.path, "weight", name, variable, e)
                         for e in entries for name, variable in e.weights]
    if gradients:
        obstacle = _gradient_obstacle(model, y, loss)
        if obstacle:
            notes.append(f"gradients are not logged: {obstacle}")
            gradients = False
    if not (activations or gradients):
        return observations, notes

    outputs, trainable, grads, failure = (run or forward_and_backward)(
        model, entries, x, y, gradients, loss, sample_weight)
    if activations:
        observations += _activation_observations(entries, outputs, notes)
    if failure is not None:
        # The loss is the fragile part (targets, loss function): the rest stands.
        notes.append(f"gradients are not logged: computing them failed "
                     f"({type(failure).__name__}: {failure})")
    elif gradients:
        observations += [Observation(e.path, "gradient", name, g, e)
                         for (e, name, _), g in zip(trainable, grads) if g is not None]
    return observations, notes


#: Backends whose automatic differentiation the probe uses.
GRADIENT_BACKENDS = ("tensorflow", "jax", "torch")


def forward_and_backward(model: keras.Model, entries: List[LayerEntry], x, y, gradients: bool, loss,
                         sample_weight=None) -> Pass:
    """Run the probe batch through `model` in inference mode, capturing every
    layer call's output (`kinit.capture`), and take the gradients of the loss
    if asked, with the active backend's automatic differentiation."""
    backend = keras.backend.backend()
    if gradients and backend == "jax":
        from .jax_pass import jax_forward_and_backward

        return jax_forward_and_backward(model, entries, x, y, gradients, loss, sample_weight)
    if gradients and backend == "torch":
        return _torch_forward_and_backward(model, entries, x, y, loss, sample_weight)
    trainable = grads = failure = None
    targets = [(entry.path, entry.layer) for entry in entries if entry.captures_outputs]
    with _tape(gradients) as tape, capturing(targets, "output") as outputs:
        y_pred = model(x, training=False)
        if gradients:
            loss_value, failure = _attempt(_loss, model, x, y, y_pred, loss, sample_weight)
    if gradients and failure is None:
        trainable = _trainable(entries, outputs)
        grads, failure = _attempt(tape.gradient, loss_value, [v for _, _, v in trainable])
    return outputs, trainable, grads, failure


def _torch_forward_and_backward(model, entries, x, y, loss, sample_weight) -> Pass:
    """`forward_and_backward` with torch autograd: the gradients are returned
    by `torch.autograd.grad`, never accumulated into the parameters' ``.grad``."""
    import torch

    trainable = grads = None
    targets = [(entry.path, entry.layer) for entry in entries if entry.captures_outputs]
    with torch.enable_grad(), capturing(targets, "output") as outputs:
        y_pred = model(x, training=False)
        loss_value, failure = _attempt(_loss, model, x, y, y_pred, loss, sample_weight)
    if failure is None:
        trainable = _trainable(entries, outputs)
        grads, failure = _attempt(_torch_gradients, loss_value, [v for _, _, v in trainable])
    outputs = [(path, [t.detach() for t in tensors]) for path, tensors in outputs]  # free the graph
    return outputs, trainable, grads, failure


def _torch_gradients(loss_value, variables) -> list:
    import torch

    parameters = [variable.value for variable in variables]
    return [None if g is None else g.detach()
            for g in torch.autograd.grad(loss_value, parameters, allow_unused=True)]


def _trainable(entries: List[LayerEntry], outputs) -> list:
    """The trainable ``(entry, name, variable)`` of `entries`, in call order."""
    return [(e, name, v) for e in _call_order(entries, outputs) for name, v in e.weights if v.trainable]


def _call_order(entries: List[LayerEntry], outputs) -> List[LayerEntry]:
    """`entries` in the order their layers first ran; the layers that did not
    run through ``layer(...)`` after them, in discovery order."""
    first_call: dict = {}
    for index, (path, _) in enumerate(outputs):
        first_call.setdefault(path, index)
    return sorted(entries, key=lambda e: first_call.get(e.path, len(outputs)))


def _attempt(function, *args) -> Tuple[Any, Optional[Exception]]:
    """``(function(*args), None)``, or ``(None, error)`` if it raised."""
    try:
        return function(*args), None
    except Exception as error:  # reported as a note by the caller
        return None, error


def _activation_observations(entries, outputs, notes) -> List[Observation]:
    """One observation per captured tensor, in call order (depth order):
    ``output``, ``output_1`` for a layer's calls, ``output/0``, ``output/1``
    for the tensors of a call that returns several."""
    by_path = {e.path: e for e in entries}
    calls: dict = {}
    found = []
    for path, tensors in outputs:
        index = calls[path] = calls.get(path, -1) + 1
        call = "output" if index == 0 else f"output_{index}"
        names = [call] if len(tensors) == 1 else [f"{call}/{i}" for i in range(len(tensors))]
        found += [Observation(path, "activation", name, value, by_path[path])
                  for name, value in zip(names, tensors)]
    missing = [e.path for e in entries if e.captures_outputs and e.path not in calls]
    if missing:
        notes.append("activations are not logged for layers that did not run through "
                     f"`layer(...)` on the probe batch: {', '.join(missing)}")
    return found


def _gradient_obstacle(model, y, loss) -> str:
    """Why gradients cannot be taken, or "" if they can."""
    if keras.backend.backend() not in GRADIENT_BACKENDS:
        return (f"they need the TensorFlow, JAX or PyTorch backend and the '{keras.backend.backend()}' "
                "backend is active")
    if y is None:
        return "the probe data has no targets; pass probe_data=(x, y)"
    if loss is None and getattr(model, "loss", None) is None:
        return "the model has no loss; compile it with one (or pass loss= to diagnose)"
    return ""


@contextlib.contextmanager
def _tape(active: bool):
    if not active:
        if keras.backend.backend() == "torch":
            import torch

            with torch.no_grad():  # no autograd graph kept alive with the outputs
                yield None
        else:
            yield None
        return
    import tensorflow as tf

    with tf.GradientTape() as tape:
        yield tape


def _loss(model, x, y, y_pred, loss, sample_weight=None):
    if loss is None:
        return model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
    values = keras.losses.get(loss)(y, y_pred)
    if sample_weight is not None:  # as Keras's losses weight examples: a sum over the batch size
        weights = keras.ops.cast(sample_weight, values.dtype)
        values = values * keras.ops.reshape(weights, keras.ops.shape(weights) + (1,) * (values.ndim - weights.ndim))
    return keras.ops.mean(values)
