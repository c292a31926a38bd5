"""μP on Fashion-MNIST: the coordinate check and learning-rate transfer.

Two reproductions of "Tensor Programs V" (Yang et al. 2022) with kinit.mup,
on microsoft/mup's MLP example: 784 → w → w → 10, ReLU, no biases.

1. Coordinate check (the paper's Figure 5 / microsoft/mup's coord-check
   plots): widths 2⁶ … 2¹¹, a few Adam steps at one learning rate, 2 seeds.
   The standard parametrization (He init, plain Adam, Dense readout) makes
   the output's mean |activation| grow with width after the first step;
   μP (set_base_shapes + initialize(policy="mup") + kinit.mup.Adam +
   Readout) keeps it flat.
2. Learning-rate transfer (the shape of the paper's Figure 1): sweep Adam's
   learning rate over a 2× grid at widths 128 and 2048, a few hundred steps
   each, and compare the training loss. Under μP the best learning rate
   stays put; under the standard parametrization it moves.

    python examples/mup_transfer.py            # the full run (≈ 10 min on 2 cores)
    python examples/mup_transfer.py --quick    # small widths, few steps (CI, < 1 min)

Everything goes to --output-dir (default runs/mup_transfer/<stamp>):
coord_check.csv, coord_check.png (SP above, μP below), transfer.csv,
transfer.md, transfer.png and summary.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import keras
import numpy as np

import kinit
from fashion_mnist_data import load_fashion_mnist

#: The base and delta widths of μP: hyperparameters tuned at width 64 transfer.
BASE_WIDTH, DELTA_WIDTH = 64, 128
PARAMETRIZATIONS = ("SP", "μP")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small widths and few steps (well under a minute)")
    parser.add_argument("--coord-widths", type=int, nargs="+", help="default 64 … 2048 (quick: 64 128 256)")
    parser.add_argument("--coord-steps", type=int, default=3, help="steps recorded (1 = at initialization)")
    parser.add_argument("--coord-lr", type=float, default=1e-2, help="Adam's learning rate in the coordinate check")
    parser.add_argument("--coord-batch", type=int, default=64)
    parser.add_argument("--transfer-widths", type=int, nargs=2, help="default 128 2048 (quick: 64 256)")
    parser.add_argument("--lr-exponents", type=int, nargs=2, metavar=("LOW", "HIGH"),
                        help="learning rates 2^LOW … 2^HIGH (default -13 -3; quick -9 -7)")
    parser.add_argument("--steps", type=int, help="training steps per transfer run (default 300, quick 20)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-size", type=int, help="training images the loss is measured on (default 10000, quick 500)")
    parser.add_argument("--seeds", type=int, help="seeds per configuration (default 2, quick 1)")
    parser.add_argument("--data-dir", type=Path, help="a directory with the four Fashion-MNIST files")
    parser.add_argument("--no-download", action="store_true", help="use only files already on this machine: never install Debian's package nor try "
                        "Keras's download")
    parser.add_argument("--output-dir", type=Path, help="default runs/mup_transfer/<YYYYmmdd-HHMMSS>")
    parser.add_argument("--quiet", action="store_true", help="print only the results")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "coord_widths": [64, 128, 256] if quick else [2**k for k in range(6, 12)],
        "transfer_widths": [64, 256] if quick else [128, 2048],
        "lr_exponents": [-9, -7] if quick else [-13, -3],
        "steps": 20 if quick else 300,
        "eval_size": 500 if quick else 10000,
        "seeds": 1 if quick else 2,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.output_dir is None:
        args.output_dir = Path("runs", "mup_transfer", time.strftime("%Y%m%d-%H%M%S"))
    return args


# --- the models ------------------------------------------------------------------


def mlp(width: int, readout: bool) -> keras.Model:
    """microsoft/mup's MLP example: 784 → width → width → 10, ReLU, no biases."""
    out = kinit.mup.Readout(10, use_bias=False, name="output") if readout else keras.layers.Dense(
        10, use_bias=False, name="output")
    return keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(width, use_bias=False, name="hidden_1"),
        keras.layers.ReLU(name="relu_1"),
        keras.layers.Dense(width, use_bias=False, name="hidden_2"),
        keras.layers.ReLU(name="relu_2"),
        out,
    ], name=f"mlp_{width}")


def build(width: int, parametrization: str) -> keras.Model:
    """SP: He normal everywhere, Dense readout. μP: base shapes, μP init, Readout."""
    if parametrization == "SP":
        model = mlp(width, readout=False)
        kinit.initialize(model, policy="he_normal")
        return model
    model = mlp(width, readout=True)
    kinit.mup.set_base_shapes(model, mlp(BASE_WIDTH, True), mlp(DELTA_WIDTH, True))
    kinit.initialize(model, policy="mup")
    return model


def adam(parametrization: str, learning_rate: float) -> keras.optimizers.Optimizer:
    cls = keras.optimizers.Adam if parametrization == "SP" else kinit.mup.Adam
    return cls(learning_rate=learning_rate)


def prepare_data(args):
    raw = load_fashion_mnist(args.data_dir, download=not args.no_download)
    x = raw.x_train.reshape(len(raw.x_train), -1).astype("float32") / 255.0
    return x, raw.y_train.astype("int32"), raw.source


# --- 1. the coordinate check -----------------------------------------------------------


def coordinate_check(x, y, args, say) -> dict:
    reports = {}
    for parametrization in PARAMETRIZATIONS:
        started = time.perf_counter()
        report = kinit.mup.coord_check(
            lambda width: build(width, parametrization), args.coord_widths, x, y,
            steps=args.coord_steps, optimizer=adam(parametrization, args.coord_lr), seeds=args.seeds,
            batch_size=args.coord_batch,
            title=f"{parametrization} MLP, Adam lr={args.coord_lr:g}, {args.seeds} seed(s)",
        )
        reports[parametrization] = report
        say(f"coordinate check, {parametrization}: {time.perf_counter() - started:.0f} s")
    return reports


def coordinate_summary(reports) -> dict:
    """Max/min over widths of the output's l1 at every step, per parametrization."""
    summary = {}
    for parametrization, report in reports.items():
        rows = report.summary()
        output = report.layers()[-1]
        summary[parametrization] = {
            str(step): {"ratio": rows.row(output, step).ratio, "slope": rows.row(output, step).slope,
                        "verdict": rows.row(output, step).verdict,
                        "l1_min": rows.row(output, step).l1_min, "l1_max": rows.row(output, step).l1_max}
            for step in report.steps
        }
    return summary


def write_coordinate_check(reports, out: Path) -> None:
    with open(out / "coord_check.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(("parametrization",) + kinit.mup.CoordCheckReport.columns)
        for parametrization, report in reports.items():
            for row in report:
                writer.writerow((parametrization,) + tuple(getattr(row, c) for c in report.columns))
    kinit.mup.plot_reports({report.title: report for report in reports.values()}, str(out / "coord_check.png"))


# --- 2. learning-rate transfer ----------------------------------------------------------


def train_loss(parametrization, width, learning_rate, seed, x, y, eval_rows, args) -> float:
    """Train `args.steps` Adam steps and return the loss on `eval_rows` of the training set."""
    keras.utils.set_random_seed(seed)
    model = build(width, parametrization)
    model.compile(optimizer=adam(parametrization, learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    order = np.random.default_rng(seed).permutation(len(x))
    need = args.steps * args.batch_size
    index = np.resize(order, need)  # repeats the permutation if one epoch is not enough
    model.fit(x[index], y[index], batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
    loss = model.evaluate(x[eval_rows], y[eval_rows], batch_size=1000, verbose=0)
    return float(loss) if math.isfinite(loss) else math.nan


def transfer(x, y, args, say) -> list:
    eval_rows = np.arange(min(args.eval_size, len(x)))
    low, high = args.lr_exponents
    rows = []
    for parametrization in PARAMETRIZATIONS:
        for width in args.transfer_widths:
            started = time.perf_counter()
            for exponent in range(low, high + 1):
                losses = [train_loss(parametrization, width, 2.0**exponent, seed, x, y, eval_rows, args)
                          for seed in range(args.seeds)]
                rows.append({"parametrization": parametrization, "width": width, "log2_lr": exponent,
                             "learning_rate": 2.0**exponent, "loss": float(np.mean(losses)), "losses": losses})
            say(f"transfer, {parametrization} width {width}: {time.perf_counter() - started:.0f} s")
    return rows


def best_learning_rates(rows) -> dict:
    """(parametrization, width) → the log2 learning rate of the lowest mean loss."""
    best = {}
    for row in rows:
        key = (row["parametrization"], row["width"])
        if math.isfinite(row["loss"]) and (key not in best or row["loss"] < best[key]["loss"]):
            best[key] = row
    return {key: row["log2_lr"] for key, row in best.items()}


def transfer_table(rows, args) -> str:
    widths = args.transfer_widths
    best = best_learning_rates(rows)
    header = "| log2 lr | " + " | ".join(f"{p} w={w}" for p in PARAMETRIZATIONS for w in widths) + " |"
    lines = [header, "|---" * (1 + 2 * len(widths)) + "|"]
    exponents = sorted({row["log2_lr"] for row in rows})
    by_key = {(r["parametrization"], r["width"], r["log2_lr"]): r["loss"] for r in rows}
    for exponent in exponents:
        cells = []
        for p in PARAMETRIZATIONS:
            for w in widths:
                loss = by_key[p, w, exponent]
                text = "diverged" if not math.isfinite(loss) else f"{loss:.4f}"
                cells.append(f"**{text}**" if best.get((p, w)) == exponent else text)
        lines.append(f"| {exponent} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_transfer(rows, args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, parametrization in zip(axes, PARAMETRIZATIONS):
        for width in args.transfer_widths:
            mine = [r for r in rows if r["parametrization"] == parametrization and r["width"] == width]
            ax.plot([r["log2_lr"] for r in mine], [r["loss"] for r in mine], marker="o", label=f"width {width}")
        ax.set_title(f"{parametrization}, Adam, {args.steps} steps")
        ax.set_xlabel("log2 learning rate")
        ax.grid(True, alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("training loss")
    finite = [r["loss"] for r in rows if math.isfinite(r["loss"])]
    if finite:
        axes[0].set_ylim(min(finite) * 0.9, min(max(finite), 2.5) * 1.05)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_transfer(rows, args, out: Path) -> str:
    with open(out / "transfer.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(("parametrization", "width", "log2_lr", "learning_rate", "loss", "losses"))
        for r in rows:
            writer.writerow((r["parametrization"], r["width"], r["log2_lr"], r["learning_rate"], r["loss"],
                             " ".join(f"{v:.6g}" for v in r["losses"])))
    table = transfer_table(rows, args)
    (out / "transfer.md").write_text(table + "\n")
    plot_transfer(rows, args, out / "transfer.png")
    return table


# --- the run ------------------------------------------------------------------------------


def run(args) -> dict:
    say = (lambda message: None) if args.quiet else print
    args.output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    x, y, source = prepare_data(args)
    say(f"Fashion-MNIST from {source}: {len(x)} training images")

    reports = coordinate_check(x, y, args, say)
    write_coordinate_check(reports, args.output_dir)
    coords = coordinate_summary(reports)
    coord_seconds = time.perf_counter() - started
    widths = f"{args.coord_widths[0]}…{args.coord_widths[-1]}"
    print(f"\nCoordinate check: the output layer's mean |activation|, max/min over widths {widths}")
    for parametrization, steps in coords.items():
        cells = ", ".join(f"t={step}: {s['ratio']:.3g} ({s['verdict']})" for step, s in steps.items())
        print(f"  {parametrization}: {cells}")

    rows = transfer(x, y, args, say)
    table = write_transfer(rows, args, args.output_dir)
    best = best_learning_rates(rows)
    small, large = args.transfer_widths
    shifts = {p: (best[p, large] - best[p, small]) if (p, small) in best and (p, large) in best else None
              for p in PARAMETRIZATIONS}
    print(f"\nLearning-rate transfer: training loss after {args.steps} Adam steps (mean of {args.seeds} seed(s))")
    print(table)
    for p in PARAMETRIZATIONS:
        if shifts[p] is not None:
            print(f"  {p}: best log2 lr {best[p, small]} at width {small}, {best[p, large]} at width {large} "
                  f"(shift {shifts[p]:+d} grid steps)")
    summary = {
        "coord_check": coords,
        "best_log2_lr": {f"{p} {w}": v for (p, w), v in best.items()},
        "shift": shifts,
        "seconds": {"coord_check": coord_seconds, "total": time.perf_counter() - started},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "source": source,
    }
    (args.output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nwall time {summary['seconds']['total']:.0f} s; results in {args.output_dir}")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> dict:
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
