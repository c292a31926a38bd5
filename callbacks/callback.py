"""`InitDiagnostics`: weight, activation and gradient diagnostics in TensorBoard."""

from __future__ import annotations

import logging
import os
import re
from typing import Dict, List, Optional

import keras
import numpy as np

from callbacks.findings import Finding, Thresholds, find_problems
from callbacks.layers import LayerEntry, discover
from callbacks.probe import ensure_built, observe, split_probe
from callbacks.rows import make_row
from callbacks.writer import SummaryWriter
from kinit.validation import check_int

logger = logging.getLogger("callbacks")

#: Largest probe batch accepted: the probe's cost must stay bounded.
MAX_PROBE_EXAMPLES = 4096

#: Row statistics written as scalars, per kind (tag ``<kind>_<stat>/<layer>/<name>``).
SCALARS = {
    "weight": ("std", "norm", "update_ratio", "nan", "inf"),
    "activation": ("mean", "std", "signal", "zero_fraction", "dead_fraction",
                   "saturated_fraction", "nan", "inf"),
    "gradient": ("norm", "nan", "inf"),
}


class InitDiagnostics(keras.callbacks.Callback):
    """Logs weight, activation and gradient histograms and health to TensorBoard.

    At step 0, before the first batch is trained (the initialization itself),
    and then after every `freq`-th epoch (step = number of epochs done), for
    every selected layer it writes:

    * histograms ``weights/<layer>/<variable>`` of every variable,
    * histograms ``activations/<layer>/output`` of the layer's output on the
      probe batch,
    * histograms ``gradients/<layer>/<variable>`` of the gradient of the loss
      on the probe batch (TensorFlow backend; other backends skip them with
      a one-time notice),
    * scalars ``<kind>_<statistic>/<layer>/<name>``: activation mean, std,
      signal (across-example std), zero, dead and saturated fractions;
      weight std, norm and update ratio ‖ΔW‖/‖W‖ since the last log;
      gradient norm; NaN and Inf counts of each,
    * the health findings as text ``findings`` (and a `logging` warning) at
      step 0 and whenever they change.

    Layer paths are unique (``outer/block/dense``), so nested models never
    collide. Histograms are binned where the tensor lives and NaN/Inf are
    counted and left out. The probe runs in inference mode and never changes
    the model. The callback never ends a training run: a failure to compute
    or write is a warning once and training goes on; an unwritable `log_dir`
    is reported at `on_train_begin` (findings still go to the log).

    Example:

    >>> diagnostics = InitDiagnostics("logs/run1", probe_data=(x_train[:256], y_train[:256]))
    >>> model.fit(x_train, y_train, epochs=10, callbacks=[diagnostics])
    >>> # tensorboard --logdir logs

    Args:
        log_dir: directory of the event files.
        probe_data: a batch ``x`` or ``(x, y)`` of 2 to 4096 examples; ``y``
            is needed for gradients (multi-input ``x``: a list or dict).
        freq: log every `freq` epochs.
        weights, activations, gradients: what to log.
        layer_filter: a regular expression; only layers whose path matches
            are logged.
        buckets: histogram bucket count.
        vanishing_factor, exploding_factor, dead_fraction, saturated_fraction:
            finding thresholds (see `callbacks.findings`).
    """

    def __init__(
        self,
        log_dir,
        probe_data,
        freq: int = 1,
        weights: bool = True,
        activations: bool = True,
        gradients: bool = True,
        layer_filter: Optional[str] = None,
        buckets: int = 30,
        vanishing_factor: float = 100.0,
        exploding_factor: float = 100.0,
        dead_fraction: float = 0.5,
        saturated_fraction: float = 0.5,
    ):
        super().__init__()
        owner = type(self).__name__
        self.log_dir = os.fspath(log_dir)
        self.x, self.y = split_probe(probe_data)
        _check_probe(owner, self.x)
        self.freq = check_int(owner, "freq", freq, minimum=1)
        self.switches = {"weights": bool(weights), "activations": bool(activations),
                         "gradients": bool(gradients)}
        self.layer_filter = _check_pattern(owner, layer_filter)
        self.buckets = check_int(owner, "buckets", buckets, minimum=1)
        self.thresholds = Thresholds.checked(
            owner, vanishing_factor=vanishing_factor, exploding_factor=exploding_factor,
            dead_fraction=dead_fraction, saturated_fraction=saturated_fraction)
        self._writer: Optional[SummaryWriter] = None
        self._entries: Optional[List[LayerEntry]] = None
        self._previous: Dict[str, np.ndarray] = {}
        self._findings: Optional[List[Finding]] = None
        self._warned: set = set()
        self._last_step: Optional[int] = None

    # Keras hooks -------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if self._writer is None:
            try:
                self._writer = SummaryWriter(self.log_dir)
            except OSError as error:
                self._warn_once("log_dir", f"InitDiagnostics: {error}. No event files will be "
                                "written; health findings still go to the log.")
        if self._last_step is None:
            self.log(0)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.freq == 0:
            self.log(epoch + 1)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._guard("write", self._writer.flush)

    # Logging -----------------------------------------------------------------
    def log(self, step: int) -> None:
        """Observe the model now and write everything under `step`."""
        self._last_step = step
        observed = self._guard("probe", self._observe)
        if observed is None:
            return
        observations, notes = observed
        for note in notes:
            self._warn_once(note, f"InitDiagnostics: {note}.")
        rows = []
        for observation in observations:
            row = self._guard(observation.kind, self._summarize, observation, step)
            if row is not None:
                rows.append(row)
        self._guard("findings", self._report, rows, step)
        if self._writer is not None:
            self._guard("write", self._writer.flush)

    def _observe(self):
        if self._entries is None:
            ensure_built(self.model, self.x)
            self._entries = discover(self.model, self.layer_filter)
        return observe(self.model, self._entries, self.x, self.y, **self.switches)

    def _summarize(self, observation, step: int) -> dict:
        values = keras.ops.convert_to_numpy(observation.value)
        row = make_row(observation, values, self._previous.get(observation.tag))
        if observation.kind == "weight":
            self._previous[observation.tag] = np.array(values, copy=True)
        if self._writer is not None:
            self._writer.histogram(observation.tag, _tensorflow_value(observation.value), step, self.buckets)
            for statistic in SCALARS[observation.kind]:
                if row[statistic] is not None:
                    self._writer.scalar(f"{observation.kind}_{statistic}/{observation.layer}/"
                                        f"{observation.name}", row[statistic], step)
        return row

    def _report(self, rows: List[dict], step: int) -> None:
        findings = find_problems(rows, self.thresholds)
        previous = self._findings
        self._findings = findings
        keys = [f.key for f in findings]
        if previous is not None and keys == [f.key for f in previous]:
            return
        if self._writer is not None:
            self._writer.text("findings", _markdown(findings, step), step)
        if findings:
            logger.warning("InitDiagnostics step %d: %s", step,
                           "; ".join(str(f) for f in findings))
        elif previous:
            logger.warning("InitDiagnostics step %d: the earlier problems are gone.", step)
        else:
            logger.info("InitDiagnostics step %d: no problems found.", step)

    def _guard(self, what: str, function, *args):
        """Run `function`; on failure warn once per `what` and return None."""
        try:
            return function(*args)
        except Exception as error:  # the callback never ends a training run
            self._warn_once(what, f"InitDiagnostics: could not log {what} "
                            f"({type(error).__name__}: {error}); training continues, "
                            "and further failures of this kind are not reported.")
            return None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)


def _tensorflow_value(value):
    """A tensor TensorFlow can bin without copying it off its device."""
    if keras.backend.backend() == "tensorflow":
        return value.value if isinstance(value, keras.Variable) else value
    return keras.ops.convert_to_numpy(value)


def _markdown(findings: List[Finding], step: int) -> str:
    if not findings:
        return f"No problems found at step {step}."
    return "\n".join(f"* {finding}" for finding in findings)


def _check_probe(owner: str, x) -> None:
    sizes = sorted({int(np.shape(leaf)[0]) for leaf in keras.tree.flatten(x) if np.ndim(leaf) > 0})
    if len(sizes) != 1 or not 2 <= sizes[0] <= MAX_PROBE_EXAMPLES:
        raise ValueError(
            f"{owner}: argument `probe_data` must be a batch x or (x, y) of 2 to "
            f"{MAX_PROBE_EXAMPLES} examples (a slice such as x[:256]); received inputs with "
            f"batch sizes {sizes or 'none'}.")


def _check_pattern(owner: str, pattern: Optional[str]) -> Optional[str]:
    if pattern is None:
        return None
    try:
        re.compile(pattern)
    except (re.error, TypeError) as error:
        raise ValueError(f"{owner}: argument `layer_filter` must be None or a regular "
                         f"expression; received layer_filter={pattern!r} ({error}).") from None
    return pattern
