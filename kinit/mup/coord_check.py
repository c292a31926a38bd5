"""The coordinate check: does each layer's activation size stay put as width grows?

Train the same architecture at several widths for a few steps and record,
at every step, the mean absolute value of every layer's output (microsoft/
mup's ``l1``). Under μP the curves are flat in width; under the standard
parametrization the output (and, with Adam, the hidden layers) blow up
after the first update. Step 1 is the initialization, step t the model
after t − 1 updates, as in microsoft/mup's plots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import keras
import numpy as np
from keras import ops, tree

from kinit.capture import capturing
from kinit.model_map import map_model
from kinit.report import Report
from kinit.validation import check_bool, check_int, check_number

OWNER = "coord_check"


@dataclass
class CoordRow:
    """The mean |activation| of one layer at one width and step.

    Attributes:
        path: the layer's path (``[i]`` appended for its i-th output when it
            has several).
        layer_class: the layer's class name.
        step: 1 = at initialization, t = after t − 1 updates.
        width: the width passed to `model_fn`.
        l1: mean over seeds of the mean absolute value of the output.
        l1_std: standard deviation of `l1` over the seeds (0 with one seed).
        seeds: how many seeds were averaged.
    """

    path: str
    layer_class: str
    step: int
    width: int
    l1: float
    l1_std: float
    seeds: int


@dataclass
class CoordSummaryRow:
    """How one layer's `l1` at one step changes across the widths.

    Attributes:
        path, layer_class, step: as in `CoordRow`.
        l1_min, l1_max: the smallest and largest `l1` over the widths.
        ratio: ``l1_max / l1_min`` (inf if some width gave exactly 0).
        slope: least-squares slope of ``log l1`` against ``log width`` (l1 ∝
            width^slope); None if some `l1` is 0.
        verdict: ``flat``, ``growing`` or ``shrinking`` by the slope, or
            ``zero`` when every width gives 0 (a zero-initialized readout at
            step 1).
    """

    path: str
    layer_class: str
    step: int
    l1_min: float
    l1_max: float
    ratio: float
    slope: Optional[float]
    verdict: str


class CoordSummary(Report):
    """One row per layer and step: the spread of `l1` across widths."""

    columns = ("path", "layer_class", "step", "l1_min", "l1_max", "ratio", "slope", "verdict")

    def row(self, path: str, step: int) -> CoordSummaryRow:
        for row in self:
            if row.path == path and row.step == step:
                return row
        raise KeyError(f"no row for path={path!r}, step={step}")


class CoordCheckReport(Report):
    """The result of `coord_check`: one row per layer, width and step.

    ``print(report)`` shows every row, `to_dataframe()` gives them to pandas,
    `summary()` the spread across widths with a verdict per layer and step,
    and `plot(path)` draws microsoft/mup's coordinate-check figure.
    """

    columns = ("path", "layer_class", "step", "width", "l1", "l1_std", "seeds")

    def __init__(self, rows=(), *, title: str = ""):
        super().__init__(rows)
        self.title = title

    @property
    def widths(self) -> list:
        return sorted({row.width for row in self})

    @property
    def steps(self) -> list:
        return sorted({row.step for row in self})

    def layers(self) -> list:
        """The layer paths in model order."""
        seen = []
        for row in self:
            if row.path not in seen:
                seen.append(row.path)
        return seen

    def l1(self, path: str, step: int) -> np.ndarray:
        """`l1` of the layer at `path` at `step`, one value per width (sorted)."""
        by_width = {row.width: row.l1 for row in self if row.path == path and row.step == step}
        return np.array([by_width[w] for w in self.widths])

    def summary(self, flat_slope: float = 0.2) -> CoordSummary:
        """Per layer and step: min, max, ratio, log-log slope and a verdict.

        A layer is ``growing`` if ``l1 ∝ width^s`` with ``s > flat_slope``,
        ``shrinking`` if ``s < -flat_slope``, else ``flat``. The default 0.2
        lets ``l1`` change by 2× over five doublings of width; the standard
        parametrization's blow-up under Adam has ``s ≈ 1`` (0.5 under SGD),
        μP's ``s ≈ 0``.
        """
        flat_slope = check_number("summary", "flat_slope", flat_slope, minimum=0.0)
        summary = CoordSummary()
        widths = np.log(np.array(self.widths, dtype="float64"))
        classes = {row.path: row.layer_class for row in self}
        for path in self.layers():
            for step in self.steps:
                values = self.l1(path, step)
                low, high = float(values.min()), float(values.max())
                if high == 0.0:
                    summary.append(CoordSummaryRow(path, classes[path], step, low, high, 1.0, 0.0, "zero"))
                    continue
                if low <= 0.0:
                    summary.append(CoordSummaryRow(path, classes[path], step, low, high, math.inf, None, "growing"))
                    continue
                slope = float(np.polyfit(widths, np.log(values), 1)[0]) if len(widths) > 1 else 0.0
                verdict = "growing" if slope > flat_slope else "shrinking" if slope < -flat_slope else "flat"
                summary.append(CoordSummaryRow(path, classes[path], step, low, high, high / low, slope, verdict))
        return summary

    def plot(self, path: str, title: Optional[str] = None, layers: Optional[Sequence[str]] = None) -> str:
        """Save microsoft/mup's coordinate-check figure to `path` (PNG) and return it.

        One panel per step; in each, ``l1`` against width (both log scale),
        one line per layer (all, or those in `layers`). Needs matplotlib.
        """
        return plot_reports({title or self.title: self}, path, layers=layers)

    def draw(self, axes, layers: Optional[Sequence[str]] = None) -> None:
        """Draw one panel per step into the matplotlib `axes` (a sequence)."""
        import matplotlib.pyplot as plt

        names = list(layers) if layers is not None else self.layers()
        colors = plt.cm.viridis(np.linspace(0.0, 0.9, max(len(names), 1)))
        for ax, step in zip(axes, self.steps):
            for color, name in zip(colors, names):
                values = self.l1(name, step)
                ax.plot(self.widths, np.where(values > 0, values, np.nan), marker="o", color=color, label=name)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"t={step}")
            ax.set_xlabel("width")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel("mean |activation| (l1)")
        axes[-1].legend(fontsize=7, loc="best")


def plot_reports(reports: dict, path: str, layers: Optional[Sequence[str]] = None) -> str:
    """Save several coordinate checks (title → `CoordCheckReport`), one row
    each, as one PNG at `path` and return `path`. Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("CoordCheckReport.plot() needs matplotlib (pip install matplotlib)") from error
    columns = max(len(report.steps) for report in reports.values())
    figure = plt.figure(figsize=(4.2 * columns, 3.8 * len(reports)), layout="constrained")
    rows = figure.subfigures(len(reports), 1, squeeze=False)[:, 0]
    for row, (title, report) in zip(rows, reports.items()):
        report.draw(row.subplots(1, columns, sharey=True, squeeze=False)[0], layers=layers)
        if title:
            row.suptitle(title, fontsize=11, weight="bold")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def coord_check(
    model_fn: Callable[[int], keras.Model],
    widths: Sequence[int],
    x,
    y,
    steps: int = 3,
    optimizer=None,
    seeds: int = 2,
    *,
    loss=None,
    batch_size: Optional[int] = None,
    training: bool = False,
    title: str = "",
) -> CoordCheckReport:
    """Train each width a few steps and record every layer's mean |activation|.

    For every width and seed: ``keras.utils.set_random_seed(seed)``, build
    ``model_fn(width)``, compile it with a fresh copy of `optimizer` and
    `loss`, then `steps` times: record the mean absolute value of every
    layer's output on the next batch, and take one training step on it.

    Formula: ``l1 = mean |h|`` over the batch and all units of a layer's
    output h (microsoft/mup's coordinate size), averaged over the seeds.

    Example:

    >>> def mlp(width):
    ...     model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(width, use_bias=False),
    ...                               keras.layers.ReLU(), kinit.mup.Readout(10, use_bias=False)])
    ...     kinit.mup.set_base_shapes(model, base, delta)
    ...     kinit.initialize(model, policy="mup")
    ...     return model
    >>> report = kinit.mup.coord_check(mlp, [64, 128, 256, 512], x, y, optimizer=kinit.mup.Adam(1e-2))
    >>> print(report.summary())                 # flat / growing per layer and step
    >>> report.plot("coord_check.png")

    Args:
        model_fn: ``width → built model`` (any kind: Functional, Sequential, subclassed; set base
            shapes and initialize inside it for μP).
        widths: at least two widths (ints > 0).
        x, y: training data (arrays); batches are consecutive slices.
        steps: how many steps to record (≥ 1); step 1 is at initialization.
        optimizer: a Keras optimizer instance (used as a template: each run
            gets a fresh copy from its config), a class, or None for
            ``Adam(1e-3)`` — `kinit.mup.Adam` if the model has μP base shapes,
            else `keras.optimizers.Adam`.
        seeds: how many seeds (0, 1, …) to average (≥ 1).
        loss: a Keras loss; None means
            ``SparseCategoricalCrossentropy(from_logits=True)``.
        batch_size: rows per step; None uses all of `x` every step.
        training: the mode of the recording forward pass; False (default)
            runs inference mode (dropout off, normalization on its moving
            statistics), so recording does not change the model.
        title: the report's (and plot's) title.

    Returns:
        A `CoordCheckReport`.

    Reference:
        Yang et al. 2022, "Tensor Programs V", arXiv 2203.03466, Appendix D.1
        (coordinate check); microsoft/mup, ``mup/coord_check.py``.
    """
    steps = check_int(OWNER, "steps", steps, minimum=1)
    seeds = check_int(OWNER, "seeds", seeds, minimum=1)
    training = check_bool(OWNER, "training", training)
    widths = [check_int(OWNER, "widths", w, minimum=1) for w in widths]
    if len(widths) < 2 or len(set(widths)) != len(widths):
        raise ValueError(f"{OWNER}: argument `widths` must be at least two distinct widths; received widths={widths!r}.")
    if batch_size is not None:
        batch_size = check_int(OWNER, "batch_size", batch_size, minimum=1)
    rows_in_x = len(tree.flatten(x)[0])
    batch_size = batch_size or rows_in_x
    loss = loss if loss is not None else keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    _check_optimizer(optimizer)
    # Layers are matched across runs by position (each model_fn call names
    # its layers anew: dense, dense_3, …) and named as in the first run.
    layout = None
    samples = {}  # (position, step, width) → [l1 per seed]
    for width in sorted(widths):
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            model = model_fn(width)
            if not isinstance(model, keras.Model) or not model.built:
                raise ValueError(
                    f"{OWNER}: model_fn({width}) must return a built keras.Model; received "
                    f"{'an unbuilt ' if isinstance(model, keras.Model) else ''}{type(model).__name__}."
                )
            model.compile(optimizer=_fresh_optimizer(optimizer, model), loss=loss)
            probe = _Probe(model)
            for step in range(1, steps + 1):
                start = ((step - 1) * batch_size) % rows_in_x
                xb = tree.map_structure(lambda a: _take(a, start, batch_size), x)
                yb = tree.map_structure(lambda a: _take(a, start, batch_size), y)
                names, values = probe(xb, training=training)
                if layout is None:
                    layout = names
                elif [kind for _, kind in names] != [kind for _, kind in layout]:
                    raise ValueError(
                        f"{OWNER}: model_fn({width}) has the layers {[kind for _, kind in names]}, the first "
                        f"model had {[kind for _, kind in layout]}; model_fn must build one architecture."
                    )
                for position, value in enumerate(values):
                    samples.setdefault((position, step, width), []).append(value)
                model.train_on_batch(xb, yb)
    report = CoordCheckReport(title=title)
    for (position, step, width), values in sorted(samples.items()):
        path, kind = layout[position]
        report.append(CoordRow(path, kind, step, width, float(np.mean(values)), float(np.std(values)), len(values)))
    return report


def _take(array, start: int, size: int):
    array = np.asarray(array)
    index = (np.arange(size) + start) % len(array)
    return array[index]


def _check_optimizer(optimizer) -> None:
    is_class = isinstance(optimizer, type) and issubclass(optimizer, keras.optimizers.Optimizer)
    if optimizer is not None and not is_class and not isinstance(optimizer, keras.optimizers.Optimizer):
        raise ValueError(
            f"{OWNER}: argument `optimizer` must be None, a keras.optimizers.Optimizer instance or "
            f"class; received optimizer={optimizer!r}."
        )


def _fresh_optimizer(optimizer, model):
    if optimizer is None:
        from kinit.mup.shapes import variable_records
        from kinit.mup.optimizers import Adam

        cls = Adam if variable_records(model) else keras.optimizers.Adam
        return cls(learning_rate=1e-3)
    if isinstance(optimizer, type) and issubclass(optimizer, keras.optimizers.Optimizer):
        return optimizer()
    return type(optimizer).from_config(optimizer.get_config())


class _Probe:
    """The mean |output| of every layer of `model` that runs, in run order,
    captured as the model runs (`kinit.capture`), with ``(path, class)`` for
    each value (``path[i]`` for the i-th float tensor of a call returning several)."""

    def __init__(self, model):
        model_map = map_model(model)
        self.model = model
        self.targets = [(record, record.layer) for record in model_map.leaves()
                        if record.inside is None and model_map.ran(record) is not False]

    def __call__(self, x, training: bool):
        with capturing(self.targets, "output", reduce=_mean_abs) as captures:
            self.model(x, training=training)
        names, values = [], []
        for record, tensors in captures:
            found = [t for t in tensors if t is not None]
            for i, value in enumerate(found):
                names.append((record.path if len(found) == 1 else f"{record.path}[{i}]", record.layer_class))
                values.append(float(ops.convert_to_numpy(value)))
        return names, values


def _mean_abs(tensor):
    """The mean |value| of a float tensor (None for other dtypes)."""
    if "float" not in str(getattr(tensor, "dtype", "")):
        return None
    return ops.mean(ops.abs(ops.cast(tensor, "float32")))
