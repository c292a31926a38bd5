"""TensorBoard diagnostics for kinit (weights, activations, gradients).

Imported as ``kinit.callbacks``: ``from kinit.callbacks import InitDiagnostics,
diagnose``. `InitDiagnostics` is a Keras callback that logs per-layer histograms, health
scalars and plain-language findings at initialization and during training;
`diagnose` gives the same statistics and findings for a model without
training.
"""

from .callback import InitDiagnostics
from .diagnose import Diagnosis, diagnose
from .findings import Thresholds
from .rows import DiagnosticRow
from .writer import histogram_buckets

__all__ = ["InitDiagnostics", "Diagnosis", "DiagnosticRow", "Thresholds", "diagnose", "histogram_buckets"]
