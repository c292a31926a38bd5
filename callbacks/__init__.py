"""TensorBoard diagnostics for kinit (weights, activations, gradients).

`InitDiagnostics` is a Keras callback that logs per-layer histograms, health
scalars and plain-language findings at initialization and during training;
`diagnose` gives the same statistics and findings for a model without
training.
"""

from callbacks.callback import InitDiagnostics
from callbacks.diagnose import Diagnosis, diagnose
from callbacks.findings import Thresholds
from callbacks.writer import histogram_buckets

__all__ = ["InitDiagnostics", "Diagnosis", "Thresholds", "diagnose", "histogram_buckets"]
