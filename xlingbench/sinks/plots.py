"""Render a task's :class:`xlingbench.core.task.Plot` records to PNG files.

Tasks describe their pictures as data; this is the one place that knows matplotlib, so a
task stays a pure computation and every plot of every task looks alike.
"""
from __future__ import annotations

from pathlib import Path

from xlingbench.core.task import Plot


def render(plot: Plot, folder: Path) -> Path:
    """Draw ``plot`` into ``folder/<name>.png`` and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = max(6.0, min(14.0, 0.35 * len(plot.x))) if plot.kind == "bar" else 7.0
    fig, ax = plt.subplots(figsize=(width, 4.2), dpi=110)
    _draw(ax, plot)
    ax.set_title(plot.title)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = folder / f"{plot.name}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def _draw(ax: "object", plot: Plot) -> None:
    if plot.kind == "bar":
        labels = [str(x) for x in plot.x]
        ax.bar(labels, plot.y, color="#4C72B0")
        if len(labels) > 6:  # long category names: slanted, anchored at their tick
            for label in ax.get_xticklabels():
                label.set(rotation=60, ha="right", rotation_mode="anchor")
    elif plot.kind == "hist":
        bins = plot.x if plot.x else "auto"
        ax.hist(plot.y, bins=bins, color="#4C72B0", edgecolor="white")
    elif plot.kind == "line":
        for label, (xs, ys) in plot.series.items():
            ax.plot(xs, ys, marker="o", label=label)
        ax.legend()
    else:
        raise ValueError(f"unknown plot kind {plot.kind!r}")
