"""μP (the Maximal Update Parametrization) for Keras 3.

Tune a narrow model, train a wide one with the same hyperparameters
(Yang et al. 2022, "Tensor Programs V", arXiv 2203.03466). The workflow:

>>> model, base, delta = build(1024), build(64), build(128)   # one architecture, three widths
>>> kinit.mup.set_base_shapes(model, base, delta)   # roles and width multipliers, saved with the model
>>> kinit.initialize(model, policy="mup")            # μP initialization (Table 3; zero readout)
>>> model.compile(optimizer=kinit.mup.Adam(1e-3), loss=...)   # μP learning rates per variable
>>> kinit.mup.coord_check(build_and_set, [64, 128, 256, 512], x, y)   # check: flat across widths

Modules: `roles` (what a variable is), `record` (where the record is kept),
`shapes` (`set_base_shapes`), `rule` (`MupPolicy`), `optimizers`, `layers`
(`Readout`, `MultiHeadAttention`) and `coord_check`.
"""

from kinit.mup.coord_check import CoordCheckReport, CoordRow, CoordSummary, CoordSummaryRow, coord_check, plot_reports
from kinit.mup.layers import MultiHeadAttention, Readout
from kinit.mup.optimizers import SGD, Adam, AdamW, learning_rate_factor
from kinit.mup.record import BaseShapes
from kinit.mup.roles import ROLES, ShapeRecord
from kinit.mup.rule import MupPolicy
from kinit.mup.shapes import ShapeReport, ShapeRow, get_base_shapes, set_base_shapes

__all__ = [
    "set_base_shapes",
    "get_base_shapes",
    "ShapeReport",
    "ShapeRow",
    "ShapeRecord",
    "ROLES",
    "BaseShapes",
    "MupPolicy",
    "Readout",
    "MultiHeadAttention",
    "Adam",
    "AdamW",
    "SGD",
    "learning_rate_factor",
    "coord_check",
    "CoordCheckReport",
    "CoordRow",
    "CoordSummary",
    "CoordSummaryRow",
    "plot_reports",
]
