"""`InitDiagnostics`: weight, activation and gradient diagnostics in TensorBoard."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from typing import Dict, List, Optional

import keras
import numpy as np

from kinit.inputs import check_against_model, check_batch_size, read_batch
from kinit.model_map import map_model
from kinit.validation import check_bool, check_int

from .compiled import compiled_pass
from .distribution import computes_here, writes_here
from .findings import Finding, Thresholds, find_problems
from .layers import LayerEntry, discover
from .observe import MAX_PROBE_EXAMPLES, ensure_built, observe
from .propagation import summary_values as signal_propagation_values
from .rows import make_row, spectra_row, summaries_where_they_live
from .tensor_statistics import SPARSE_TYPES
from .writer import SummaryWriter, histogram_value, histogram_values, scalar_value, text_value

logger = logging.getLogger("kinit.callbacks")

#: Row statistics written as scalars, per kind (tag ``<kind>_<stat>/<layer>/<name>``).
SCALARS = {
    "weight": ("std", "norm", "update_ratio", "nan", "inf", "spectral_norm", "stable_rank", "alpha"),
    "activation": ("mean", "std", "signal", "zero_fraction", "dead_fraction",
                   "saturated_fraction", "nan", "inf"),
    "gradient": ("norm", "nan", "inf"),
}


class InitDiagnostics(keras.callbacks.Callback):
    """Logs weight, activation and gradient histograms and health to TensorBoard.

    At step 0, before the first batch is trained (the initialization itself),
    after every `freq`-th epoch and at the end of training if its last epoch
    was not logged (step = number of epochs done), for every selected layer
    it writes:

    * histograms ``weights/<layer>/<variable>`` of every variable,
    * histograms ``activations/<layer>/output`` of the layer's output on the
      probe batch,
    * histograms ``gradients/<layer>/<variable>`` of the gradient of the loss
      on the probe batch (TensorFlow, JAX and PyTorch backends, each with
      its own automatic differentiation),
    * scalars ``<kind>_<statistic>/<layer>/<name>``: activation mean, std,
      signal (across-example std), zero, dead and saturated fractions;
      weight std, norm and update ratio ‖ΔW‖/‖W‖ since the last log;
      gradient norm; NaN and Inf counts of each; with ``spectra=True``,
      each kernel's spectral norm, stable rank and power-law exponent α
      (``weight_spectral_norm``, ``weight_stable_rank``, ``weight_alpha``;
      see `kinit.callbacks.spectra`),
    * the health findings as text ``findings`` (and a `logging` warning) at
      step 0 and whenever they change,
    * at step 0, for a model with residual blocks, its signal propagation
      (`kinit.callbacks.signal_propagation`, probe batch in training mode):
      scalars ``signal_propagation/<statistic>/block_<i>``, the table as text
      ``signal_propagation/table`` and the picture as image
      ``signal_propagation/plot`` (with matplotlib installed).

    Step 0 is also written alone into the run ``<log_dir>/initialization``,
    which TensorBoard never samples away, however long the run. In a
    distributed run only the chief logs (`callbacks.distribution`).

    Layer paths are unique (``outer/block/dense``), so nested models never
    collide. Histograms are binned and statistics computed where the tensors
    live (all tensors of a log in one traced call each on TensorFlow, one
    `jax.jit` call each on JAX, eagerly on PyTorch), and NaN/Inf are counted
    and left out. The probe runs in inference
    mode and never changes the model; from its second log on, its forward and
    gradient pass is a function traced once per model. The callback never ends
    a training run: a failure to compute or write is a warning once and
    training goes on (gradients that cannot be computed leave the weights and
    activations logged); an unwritable `log_dir` is reported at
    `on_train_begin` (findings still go to the log).

    Example:

    >>> diagnostics = InitDiagnostics("logs/run1", probe_data=(x_train[:256], y_train[:256]))
    >>> model.fit(x_train, y_train, epochs=10, callbacks=[diagnostics])
    >>> # tensorboard --logdir logs

    Args:
        log_dir: directory of the event files.
        probe_data: a batch ``x``, ``(x, y)`` or ``(x, y, sample_weight)`` of
            2 to 4096 examples, read as `fit` reads data (a tuple is
            ``(x, y[, sample_weight])``; several inputs go in a list or a
            dict), or a `tf.data.Dataset` / iterable of such batches, of which
            the first 4096 examples are taken. ``y`` is needed for gradients;
            sample weights weight the examples in their loss. Checked here
            for its size, and against the model's inputs when training
            begins: a probe that does not fit is one warning, and the
            weights are still logged.
        freq: log every `freq` epochs.
        weights, activations, gradients: what to log.
        layer_filter: a regular expression; only layers whose path matches
            are logged.
        buckets: histogram bucket count.
        vanishing_factor, exploding_factor, dead_fraction, saturated_fraction:
            finding thresholds (see `callbacks.findings`).
        spectra: also log each kernel's spectral norm, stable rank and α
            (one eigendecomposition of its ``WᵀW`` per log; off by default).
            A kernel holding NaN/Inf gives none of them, one too small to
            fit gives no α.
        signal_propagation: log the signal propagation of residual blocks
            at step 0.

    Reference:
        - [Glorot & Bengio, 2010](https://proceedings.mlr.press/v9/glorot10a.html):
          per-layer activation and gradient histograms across depth;
          saturated sigmoid layers.
        - [Goodfellow, Bengio & Courville, 2016, §8.4](https://www.deeplearningbook.org/contents/optimization.html):
          initialization must break the symmetry between units.
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
        vanishing_factor: float = Thresholds.vanishing_factor,
        exploding_factor: float = Thresholds.exploding_factor,
        dead_fraction: float = Thresholds.dead_fraction,
        saturated_fraction: float = Thresholds.saturated_fraction,
        spectra: bool = False,
        signal_propagation: bool = True,
    ):
        super().__init__()
        owner = type(self).__name__
        self.log_dir = os.fspath(log_dir)
        probe = read_batch(owner, probe_data, "probe_data", MAX_PROBE_EXAMPLES)
        check_batch_size(owner, probe, "probe_data", minimum=2, maximum=MAX_PROBE_EXAMPLES)
        self.x, self.y, self.sample_weight = probe.x, probe.y, probe.sample_weight
        self.freq = check_int(owner, "freq", freq, minimum=1)
        self.switches = {"weights": bool(weights), "activations": bool(activations),
                         "gradients": bool(gradients)}
        self.layer_filter = _check_pattern(owner, layer_filter)
        self.buckets = check_int(owner, "buckets", buckets, minimum=1)
        self.spectra = check_bool(owner, "spectra", spectra)
        self.signal_propagation = check_bool(owner, "signal_propagation", signal_propagation)
        self.thresholds = Thresholds.checked(
            owner, vanishing_factor=vanishing_factor, exploding_factor=exploding_factor,
            dead_fraction=dead_fraction, saturated_fraction=saturated_fraction)
        self._writer: Optional[SummaryWriter] = None
        self._warned: set = set()
        self._forget_model()

    def _forget_model(self) -> None:
        self._entries: Optional[List[LayerEntry]] = None
        self._previous: Dict[str, np.ndarray] = {}
        self._findings: Optional[List[Finding]] = None
        self._last_step: Optional[int] = None
        self._shift: Optional[int] = None
        self._steps_done: Optional[int] = None
        self._probe_fits = True
        self._compiled = compiled_pass()
        self._here: Optional[bool] = None  # whether this process computes (`distribution.computes_here`)
        self._chief = True  # whether it writes (`distribution.writes_here`)

    # Keras hooks -------------------------------------------------------------
    def set_model(self, model):
        if model is not getattr(self, "_model", None):
            self._forget_model()  # layers, previous weights and findings were another model's
        super().set_model(model)

    def on_train_begin(self, logs=None):
        if not self._computes_here():
            return
        self._entries = None  # layers may have been added or removed since the last fit
        self._shift = None  # set at this fit's first epoch
        self._probe_fits = self._guard("the probe", self._check_probe) is not False
        if self._writer is None and self._chief:
            try:
                self._writer = SummaryWriter(self.log_dir)
            except OSError as error:
                self._warn_once("log_dir", f"InitDiagnostics: {error}. No event files will be "
                                "written; health findings still go to the log.")
        if self._last_step is None:
            self.log(0)

    def on_epoch_begin(self, epoch, logs=None):
        if self._shift is None:
            # A later fit continues the run: its steps follow the last one
            # logged (also when it starts at initial_epoch > 0).
            self._shift = max(0, (self._last_step or 0) - epoch)

    def on_epoch_end(self, epoch, logs=None):
        if self._shift is None:
            self.on_epoch_begin(epoch)
        self._steps_done = epoch + 1 + self._shift
        if (epoch + 1) % self.freq == 0:
            self.log(self._steps_done)

    def on_train_end(self, logs=None):
        # Training that stops between logs (EarlyStopping, epochs not a
        # multiple of freq) still logs the weights it ends with.
        if self._steps_done is not None and self._last_step != self._steps_done:
            self.log(self._steps_done)
        if self._writer is not None:
            self._guard("the event file", self._writer.close)
            self._writer = None

    # Logging -----------------------------------------------------------------
    def log(self, step: int) -> None:
        """Observe the model now and write everything under `step` (flushed)."""
        self._last_step = step
        if not self._computes_here():
            return
        observed = self._guard("the probe", self._observe)
        if observed is None:
            return
        observations, notes = observed
        for note in notes:
            self._warn_once(note, f"InitDiagnostics: {note}.")
        rows, logged, values = [], [], []
        for observation, summary in zip(observations, self._summaries(observations)):
            row = self._guard(f"{observation.kind}s", self._row, observation, summary)
            if row is not None:
                rows.append(row)
                logged.append(observation)
                values += _scalars(observation, row)
        if self._writer is not None:
            values += self._histograms(logged, rows)
        findings = self._guard("findings", self._report, rows, step)
        if findings is not None and self._writer is not None:
            values.append(text_value("findings", _markdown(findings, step)))
        model_map = getattr(self, "_model_map", None)  # None if the probe could not be observed
        if step == 0 and self.signal_propagation and self._probe_fits and None not in (self._writer, model_map):
            values += self._guard("signal propagation", signal_propagation_values, model_map, self.x) or []
        if self._writer is not None and values:
            self._guard("the event file", self._writer.write, step, values)
            if step == 0:
                self._guard("the initialization run", _write_initialization, self.log_dir, values)

    def _computes_here(self) -> bool:
        """Whether this process computes the diagnostics: in a distributed run
        the chief, which alone writes them (`callbacks.distribution`)."""
        if self._here is None:
            self._here = self._guard("the distribution", computes_here, self.model) is not False
            self._chief = self._guard("the distribution", writes_here, self.model) is not False
            if not self._chief:
                logger.info("InitDiagnostics: this process is not the chief of the distributed run; "
                            "the chief writes the diagnostics.")
        return self._here

    def _check_probe(self) -> bool:
        """Whether the probe fits the model's inputs; if not, warn once in one
        line: then only the weights are logged."""
        if not self.model.built:
            return True
        try:
            check_against_model(type(self).__name__, self.model, self.x, "probe_data", y=self.y)
        except ValueError as error:
            self._warn_once("probe shape", f"{error} Activations and gradients are not logged; "
                            "weights are.")
            return False
        return True

    def _observe(self):
        if self._entries is None:
            if self._probe_fits:
                ensure_built(self.model, self.x)
            self._model_map = map_model(self.model, self.x if self._probe_fits else None)
            self._entries = discover(self._model_map, self.layer_filter)
        switches = dict(self.switches)
        if not self._probe_fits:
            switches.update(activations=False, gradients=False)
        return observe(self._model_map, self._entries, self.x, self.y, self.sample_weight,
                       run=self._compiled, **switches)

    def _summaries(self, observations) -> list:
        """`rows.summaries_where_they_live`, whose failure is warned about once."""
        return summaries_where_they_live(
            observations, lambda message: self._warn_once("statistics", f"InitDiagnostics: {message}"))

    def _row(self, observation, summary: Optional[dict]):
        if observation.kind != "weight":
            return make_row(observation, summary)
        values = np.array(keras.ops.convert_to_numpy(observation.value), copy=True)  # kept for the next log
        row = make_row(observation, summary, self._previous.get(observation.tag), values)
        self._previous[observation.tag] = values
        if self.spectra:  # its own guard: a failure loses the three numbers, not the row
            numbers = self._guard("weight spectra", spectra_row, observation, values) or {}
            row = dataclasses.replace(row, **numbers)
        return row

    def _histograms(self, observations, rows: list) -> list:
        """Histogram summary values of `observations`, binned in one traced call;
        if that fails, one by one (a failure warns once per kind)."""
        values = [_binnable(o) for o in observations]
        ranges = [_finite_range(row) for row in rows]  # the statistics found them already
        try:
            return histogram_values([o.tag for o in observations], values, self.buckets, ranges)
        except Exception:  # perhaps a single tensor: the others still get theirs
            histograms = [self._guard(f"{o.kind} histograms", histogram_value, o.tag, value, self.buckets, extremes)
                          for o, value, extremes in zip(observations, values, ranges)]
            return [h for h in histograms if h is not None]

    def _report(self, rows: list, step: int) -> Optional[List[Finding]]:
        """Log the findings if they are new; return them if they should be written."""
        findings = find_problems(rows, self.thresholds)
        previous, self._findings = self._findings, findings
        if previous is not None and [f.key for f in findings] == [f.key for f in previous]:
            return None
        if findings:
            logger.warning("InitDiagnostics step %d: %s", step, "; ".join(str(f) for f in findings))
        elif previous:
            logger.warning("InitDiagnostics step %d: the earlier problems are gone.", step)
        else:
            logger.info("InitDiagnostics step %d: no problems found.", step)
        return findings

    def _guard(self, what: str, function, *args):
        """Run `function`; on failure warn once per `what` and return None."""
        try:
            return function(*args)
        except Exception as error:  # the callback never ends a training run
            self._warn_once(what, f"InitDiagnostics: logging {what} failed "
                            f"({type(error).__name__}: {error}); training continues, "
                            "and further failures of this kind are not reported.")
            return None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)


#: The run below `log_dir` that holds step 0 alone: TensorBoard keeps a
#: random sample of 500 steps per histogram tag (1000 per scalar, 10 per
#: text), in which the initialization does not survive a long run; a run of
#: one step always keeps it.
INITIALIZATION_RUN = "initialization"


def _write_initialization(log_dir: str, values: list) -> None:
    """Write step 0's values again into the run ``<log_dir>/initialization``."""
    writer = SummaryWriter(os.path.join(log_dir, INITIALIZATION_RUN))
    try:
        writer.write(0, values)
    finally:
        writer.close()


def _binnable(observation):
    """The tensor where it lives (dense, on TensorFlow, JAX or PyTorch), else as NumPy."""
    if keras.backend.backend() in ("tensorflow", "jax", "torch") and not isinstance(observation.tensor, SPARSE_TYPES):
        return observation.tensor
    return keras.ops.convert_to_numpy(observation.value)


def _finite_range(row) -> Optional[tuple]:
    """(min, max) of a tensor whose values are all finite, else None."""
    return (row["min"], row["max"]) if row["count"] and not (row["nan"] or row["inf"]) else None


def _scalars(observation, row) -> list:
    return [scalar_value(f"{observation.kind}_{statistic}/{observation.path}/{observation.name}",
                         row[statistic])
            for statistic in SCALARS[observation.kind] if row[statistic] is not None]


def _markdown(findings: List[Finding], step: int) -> str:
    if not findings:
        return f"No problems found at step {step}."
    return "\n".join(f"* {finding}" for finding in findings)


def _check_pattern(owner: str, pattern: Optional[str]) -> Optional[str]:
    if pattern is None:
        return None
    try:
        re.compile(pattern)
    except (re.error, TypeError) as error:
        raise ValueError(f"{owner}: argument `layer_filter` must be None or a regular "
                         f"expression; received layer_filter={pattern!r} ({error}).") from None
    return pattern
