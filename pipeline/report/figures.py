"""The report's matplotlib figures, saved as PNG.

Figures are drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), not
through ``pyplot``: no display is needed, and the process-wide pyplot state (current figure,
backend) of a program that imports the pipeline is left alone.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.report.scalars import Series, smooth
from pipeline.paper import ROW_NAMES

# Colours of the training sets (bars) and of the runs in a loss figure: matplotlib's tab10.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
DPI = 100


def _save(figure: Figure, path: Path) -> None:
    FigureCanvasAgg(figure)
    # No "Software" entry: the PNG's bytes then depend on the plot, not on matplotlib's version.
    figure.savefig(path, format="png", dpi=DPI, metadata={"Software": None})


def ap_chart(metrics: dict, path: Path) -> None:
    """AP at IoU 0.5 (%) per class and the mAP, one bar per detector (training set), grouped by
    class. A class without boxes in the split (AP ``null``) gets no bar."""
    classes = list(metrics["classes"])
    detectors = metrics["detectors"]
    groups = [*classes, "mAP"]
    width = 0.8 / max(1, len(detectors))
    figure = Figure(figsize=(max(6.0, 1.4 * len(groups) + 2), 4.0), layout="constrained")
    axes = figure.add_subplot()
    for i, (train_set, d) in enumerate(detectors.items()):
        values = [d["ap50"].get(c) for c in classes] + [d["map50"]]
        xs = [g + (i - (len(detectors) - 1) / 2) * width for g in range(len(groups))]
        heights = [math.nan if v is None else 100 * v for v in values]
        bars = axes.bar(xs, heights, width, label=ROW_NAMES.get(train_set, train_set),
                        color=PALETTE[i % len(PALETTE)])
        axes.bar_label(bars, labels=["" if v is None else f"{100 * v:.1f}" for v in values],
                       fontsize=7, padding=1)
    axes.set_xticks(range(len(groups)), [g.capitalize() if g != "mAP" else g for g in groups])
    axes.set_ylabel("AP at IoU 0.5 (%)")
    axes.set_ylim(0, 100)
    axes.set_title(f"Detection on {metrics['split']} (run {metrics['run']})")
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(axis="y", alpha=0.3)
    _save(figure, path)


def loss_curves(runs: dict[str, dict[str, Series]], title: str, path: Path,
                columns: int = 4) -> None:
    """One panel per scalar tag; in each, one line per run (e.g. per training set). Losses
    (tags ``loss/*``) are drawn raw and faint with their smoothed curve on top; other tags
    (the learning rate) raw, as smoothing would blur their steps. Tags are in the order first
    logged."""
    tags: list[str] = []
    for series in runs.values():
        tags += [t for t in series if t not in tags]
    columns = min(columns, len(tags))
    rows = math.ceil(len(tags) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.4 * rows + 0.6), layout="constrained")
    figure.suptitle(title)
    for n, tag in enumerate(tags):
        axes = figure.add_subplot(rows, columns, n + 1)
        for i, (name, series) in enumerate(runs.items()):
            if tag not in series:
                continue
            s, colour = series[tag], PALETTE[i % len(PALETTE)]
            if tag.startswith("loss/"):
                axes.plot(s.steps, s.values, color=colour, alpha=0.25, linewidth=0.8)
                axes.plot(s.steps, smooth(s.values), color=colour, linewidth=1.4, label=name)
            else:
                axes.plot(s.steps, s.values, color=colour, linewidth=1.4, label=name)
        axes.set_title(tag.removeprefix("loss/"), fontsize=9)
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
        if n >= len(tags) - columns:
            axes.set_xlabel("iteration", fontsize=8)
    if len(runs) > 1:
        handles: dict[str, object] = {}
        for axes in figure.axes:
            for handle, label in zip(*axes.get_legend_handles_labels()):
                handles.setdefault(label, handle)
        figure.legend(list(handles.values()), list(handles), loc="outside lower center",
                      ncols=len(handles), fontsize=8)
    _save(figure, path)
