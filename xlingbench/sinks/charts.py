"""The one chart system: a task's declared :class:`~xlingbench.core.task.Chart` drawn as inline SVG
from logged metrics, for one run (the MLflow artifact ``plots/<chart>.svg``) or for many (the
leaderboard's detail pages), so a task (a plugin's too) gets the same pictures everywhere.

Why not matplotlib: a leaderboard of a hundred models draws hundreds of charts, and
matplotlib costs tens of milliseconds per figure on a small CI runner; these strings cost
microseconds, need no files next to the page, and every label is HTML-escaped here.
"""
from __future__ import annotations

import math
import re
from html import escape
from typing import Mapping

from xlingbench.core.task import Chart

#: one run's metrics as a chart reads them: latest values, and step series (layer -> value)
Metrics = Mapping[str, float]
Series = Mapping[str, list[tuple[int, float]]]

WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 72
#: the keys the MLflow sink adds for an interval (``<metric>_ci_low``): bounds, not labels of their own
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high")
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    first = math.floor(low / step) * step
    return [first + i * step for i in range(math.ceil((high - first) / step) + 1)]


def _frame(title: str, xlabel: str, ylabel: str, ticks: list[float], y_of, width: int = WIDTH) -> list[str]:
    """The svg element's opening, title, axis labels and horizontal grid lines."""
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{HEIGHT}" '
        f'viewBox="0 0 {width} {HEIGHT}" aria-label="{escape(title)}">'),
        f"<title>{escape(title)}</title>",
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
        f'<text x="{width / 2}" y="{HEIGHT - 4}" text-anchor="middle">{escape(xlabel)}</text>',
        f'<text x="12" y="{HEIGHT / 2}" text-anchor="middle" transform="rotate(-90 12 {HEIGHT / 2})">{escape(ylabel)}</text>',
    ]
    for tick in ticks:
        y = y_of(tick)
        parts.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{tick:.4g}</text>')
    return parts


def _legend(names: list[str], width: int = WIDTH) -> list[str]:
    """One coloured label per series, top right; nothing for a single unnamed series."""
    if len(names) < 2:
        return []
    return [
        f'<text x="{width - RIGHT}" y="{TOP + 12 * i}" text-anchor="end" font-size="11" '
        f'fill="{PALETTE[i % len(PALETTE)]}">{escape(name)}</text>'
        for i, name in enumerate(names)
    ]


def bar_chart(title: str, labels: list[str], series: dict[str, list[float]], xlabel: str = "", ylabel: str = "") -> str:
    """Grouped bars: one group per label, one bar per series (missing values as NaN are skipped)."""
    values = [v for vals in series.values() for v in vals if not math.isnan(v)]
    ticks = _ticks(min([0.0, *values]), max([0.0, *values]))
    low, high = ticks[0], ticks[-1]
    plot_h = HEIGHT - TOP - BOTTOM

    def y_of(v: float) -> float:
        return TOP + plot_h * (high - v) / (high - low)

    width = max(WIDTH, LEFT + RIGHT + 16 * len(labels) * max(len(series), 1))  # room for every label
    parts = _frame(title, xlabel, ylabel, ticks, y_of, width)
    group_w = (width - LEFT - RIGHT) / max(len(labels), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    for i, label in enumerate(labels):
        x0 = LEFT + i * group_w + group_w * 0.1
        for j, (name, vals) in enumerate(series.items()):
            if math.isnan(vals[i]):
                continue
            top, base = sorted((y_of(vals[i]), y_of(0.0)))
            parts.append(
                f'<rect x="{x0 + j * bar_w:.1f}" y="{top:.1f}" width="{bar_w:.1f}" height="{base - top:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(f"{label} {name}: {vals[i]:.4g}")}</title></rect>'
            )
        cx = LEFT + (i + 0.5) * group_w
        parts.append(
            f'<text x="{cx:.1f}" y="{HEIGHT - BOTTOM + 12}" font-size="10" text-anchor="end" '
            f'transform="rotate(-45 {cx:.1f} {HEIGHT - BOTTOM + 12})">{escape(label)}</text>'
        )
    return "".join(parts + _legend(list(series), width) + ["</svg>"])


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], xlabel: str = "", ylabel: str = "") -> str:
    """One polyline (with point markers) per series of (x, y) points."""
    points = [p for pts in series.values() for p in pts]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ticks = _ticks(min(ys), max(ys))
    low, high = ticks[0], ticks[-1]
    x_low = min(xs)
    x_high = max(xs) if max(xs) > x_low else x_low + 1
    plot_h, plot_w = HEIGHT - TOP - BOTTOM, WIDTH - LEFT - RIGHT

    def y_of(v: float) -> float:
        return TOP + plot_h * (high - v) / (high - low)

    def x_of(v: float) -> float:
        return LEFT + plot_w * (v - x_low) / (x_high - x_low)

    parts = _frame(title, xlabel, ylabel, ticks, y_of)
    for x in _ticks(x_low, x_high, 8):
        if x_low <= x <= x_high:
            parts.append(f'<text x="{x_of(x):.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="11" text-anchor="middle">{x:.6g}</text>')
    for j, (name, pts) in enumerate(series.items()):
        colour = PALETTE[j % len(PALETTE)]
        coords = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in pts)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.extend(
            f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3" fill="{colour}">'
            f"<title>{escape(f'{name} @ {x:.6g}: {y:.4g}')}</title></circle>"
            for x, y in pts
        )
    return "".join(parts + _legend(list(series)) + ["</svg>"])


def draw(chart: Chart, runs: Mapping[str, tuple[Metrics, Series]]) -> str | None:
    """``chart`` over ``runs`` (legend label -> (metrics, step series)) as SVG; None when no run
    logged what it reads. Bars: one group per ``<metric>/<label>`` key (not the interval bounds
    the sink logs beside it); lines: the step metric."""
    if chart.kind == "line":
        series = {name: [(float(s), float(v)) for s, v in steps.get(chart.metric, [])] for name, (_, steps) in runs.items()}
        series = {name: points for name, points in series.items() if points}
        return line_chart(chart.title, series, chart.xlabel, chart.ylabel) if series else None
    prefix = chart.metric + "/"
    labels = sorted({k[len(prefix):] for metrics, _ in runs.values() for k in metrics
                     if k.startswith(prefix) and not k.endswith(INTERVAL_SUFFIXES)}, key=_natural)
    if not labels:
        return None
    bars = {name: [float(metrics.get(prefix + label, math.nan)) for label in labels] for name, (metrics, _) in runs.items()}
    return bar_chart(chart.title, labels, bars, chart.xlabel, chart.ylabel)


def _natural(label: str) -> list[object]:
    """Sort key that puts "2" before "10" (count labels) and leaves text in text order."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label)]
