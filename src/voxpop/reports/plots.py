"""The report's figures as PNG bytes (matplotlib's Agg backend, no global pyplot state)."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
CONFUSION_MATRIX = "confusion_matrix.png"
PER_CLASS_F1 = "per_class_f1.png"
RELIABILITY = "reliability.png"
PLOT_FILES = (CONFUSION_MATRIX, PER_CLASS_F1, RELIABILITY)


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def confusion_matrix_png(metrics: dict, *, title: str) -> bytes:
    """Heatmap of the row-normalised confusion matrix, each cell annotated with its count."""
    labels = metrics["labels"]
    normalized = np.asarray(metrics["confusion_matrix_normalized"])
    counts = np.asarray(metrics["confusion_matrix"])
    size = 2.5 + 0.6 * len(labels)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot()
    image = axes.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true class")
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, labels, rotation=45, ha="right")
    axes.set_yticks(ticks, labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for (row, col), count in np.ndenumerate(counts):
        colour = "white" if normalized[row, col] > 0.5 else "black"
        axes.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    return _png(figure)


def per_class_f1_png(report: dict) -> bytes:
    """Grouped bars: per-class F1 of every member and every vote, side by side."""
    labels = report["labels"]
    models = {f"member {k}": v for k, v in report["members"].items()}
    models |= {f"{k} vote": v for k, v in report["votes"].items()}
    figure = Figure(figsize=(max(6.0, 1.2 * len(labels) + 3), 4))
    axes = figure.add_subplot()
    width = 0.8 / max(len(models), 1)
    positions = np.arange(len(labels))
    for offset, (name, metrics) in enumerate(models.items()):
        f1 = [metrics["per_class"][label]["f1"] for label in labels]
        hatch = "//" if name.endswith("vote") else None
        axes.bar(positions + offset * width - 0.4 + width / 2, f1, width, label=name, hatch=hatch)
    axes.set_xticks(positions, labels, rotation=45 if len(labels) > 6 else 0, ha="right")
    axes.set_ylim(0, 1)
    axes.set_ylabel("F1")
    axes.set_title("Per-class F1: members vs ensemble")
    axes.legend(fontsize=7, ncols=2)
    return _png(figure)


def reliability_png(report: dict) -> bytes:
    """Reliability diagram: accuracy against confidence per bin for every vote and member."""
    figure = Figure(figsize=(5, 5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    models = {f"{k} vote": v for k, v in report["votes"].items()}
    models |= {f"member {k}": v for k, v in report["members"].items()}
    for name, metrics in models.items():
        bins = [b for b in metrics["reliability"] if b["rows"]]
        style = "-" if name.endswith("vote") else "--"
        axes.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            style,
            marker="o",
            markersize=3,
            label=f"{name} (ECE {metrics['ece']:.3f})",
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence")
    axes.set_ylabel("accuracy")
    axes.set_title("Reliability")
    axes.legend(fontsize=7)
    return _png(figure)


def report_plots(report: dict) -> dict[str, bytes]:
    """File name -> PNG bytes for every figure of the report."""
    primary = report["primary"]
    return {
        CONFUSION_MATRIX: confusion_matrix_png(
            report["votes"][primary], title=f"Confusion matrix ({primary} vote)"
        ),
        PER_CLASS_F1: per_class_f1_png(report),
        RELIABILITY: reliability_png(report),
    }
