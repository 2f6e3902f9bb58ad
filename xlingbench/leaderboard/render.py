"""Render a :class:`~xlingbench.leaderboard.collect.Leaderboard` as a static site or a Markdown table.

The site is self-contained (inline CSS, inline SVG charts, a few lines of vanilla JS for
sorting; no CDN), so it can be published as a CI artifact or on any static host. Every
string that came from a run (model names, tags, metric keys, params, warnings) goes through
:func:`html.escape`; no run data is ever placed inside a ``<script>`` element.

What goes where is decided in :mod:`xlingbench.leaderboard.view`: this module knows no task by
name. Every chart is a task's declared :class:`~xlingbench.core.task.Chart`, drawn by the one
chart system (:mod:`xlingbench.sinks.charts`), as the MLflow sink draws it for a single run.
"""
from __future__ import annotations

import hashlib
import math
import re
from html import escape
from pathlib import Path

from xlingbench.core.outputs import replace_outputs
from xlingbench.core.task import short_revision
from xlingbench.leaderboard.collect import Leaderboard, TaskRow, metric_histories, public_uri
from xlingbench.leaderboard.view import Column, Line, View, build_view
from xlingbench.sinks.charts import draw, line_chart
from xlingbench.sinks.store import Histories

SIZE = re.compile(r"^\s*([\d.]+)\s*([KMBT]?)", re.IGNORECASE)
#: how many characters of a configuration fingerprint are shown (the full one is the tooltip)
SHORT = 8


def fmt(value: float | None) -> str:
    """Four significant digits; an empty string for a missing value."""
    return "" if value is None or math.isnan(value) else f"{value:.4g}"


def size_key(size: str) -> str:
    """Parameter count as a sortable number ("560M" -> 5.6e8); empty when unparseable."""
    match = SIZE.match(size)
    if not match:
        return ""
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[match.group(2).upper()]
    try:
        return repr(float(match.group(1)) * scale)
    except ValueError:
        return ""


def slug(model: str) -> str:
    """A file name for a model's detail page: readable, safe, and unique per model name."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.")[:60] or "model"
    return f"{readable}-{hashlib.sha1(model.encode()).hexdigest()[:8]}"


def head(column: Column) -> str:
    """``"main_score ↑"``; a descriptive headline (no better or worse) gets no arrow."""
    arrow = {True: " ↑", False: " ↓", None: ""}[column.higher_is_better]
    return column.main_score + arrow


def interval_text(row: TaskRow) -> str:
    """``"[low, high]"`` where the run logged an interval for its headline, else empty."""
    bounds = row.interval()
    return "" if bounds is None else f"[{fmt(bounds[0])}, {fmt(bounds[1])}]"


def short(config: str) -> str:
    """A fingerprint as shown in tables ("unknown" for runs logged without one)."""
    return config[:SHORT] or "unknown"


# --------------------------------------------------------------------------- Markdown


def md(text: str) -> str:
    """Escape for a Markdown table cell (GitHub renders inline HTML, so escape that too)."""
    return escape(text).replace("|", "\\|").replace("\n", " ")


def md_score(row: TaskRow | None, paper: float | None) -> str:
    """A Markdown cell: the headline linked to its run, its interval, ⚠ for warnings, the paper's number."""
    text = md(fmt(row.value)) if row else ""
    if row and row.url and text:
        text = f"[{text}]({row.url})"
    if row and row.interval():
        text += f" {md(interval_text(row))}"
    if row and row.warnings:
        text += " ⚠"
    return text + (f" (paper {fmt(paper)})" if paper is not None else "")


def render_markdown(board: Leaderboard) -> str:
    """The models x tasks table (default configurations) as GitHub-flavoured Markdown, then the
    runs of other configurations and the warnings (for ``$GITHUB_STEP_SUMMARY``)."""
    view = build_view(board)
    header = ["Model", "Family", "Size", "Revision", "Step"] + [f"{c.task} ({head(c)})" for c in view.columns]
    out = ["| " + " | ".join(md(h) for h in header) + " |", "|" + "---|" * len(header)]
    for m in view.lines:
        cells = [md(m.model), md(m.family), md(m.size), md(short_revision(m.revision)), "" if m.step is None else str(m.step)]
        cells += [md_score(m.tasks.get(c.task), c.published.get(m.model)) for c in view.columns]
        out.append("| " + " | ".join(cells) + " |")
    if not view.lines:
        out.append("| " + " | ".join(["no runs"] + [""] * (len(header) - 1)) + " |")
    if view.others:
        out += ["", "**Other configurations** (not comparable with the table above)", "",
                "| Task | Configuration | Model | Revision | Step | Headline |", "|---|---|---|---|---|---|"]
        out += [f"| {md(r.task)} | {md(short(r.config))} | {md(r.model)} | {md(short_revision(r.revision))} | "
                f"{'' if r.step is None else r.step} | {md_score(r, None)} |" for r in view.others]
    warned = [r for r in view.runs if r.warnings]
    if warned:
        out += ["", "**Warnings** (⚠)", ""]
        out += [f"- {md(r.model)}@{md(short_revision(r.revision))} {md(r.task)}: {md('; '.join(r.warnings))}" for r in warned]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- HTML

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th.sortable{cursor:pointer;background:#f4f4f4;user-select:none}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}.paper{color:#777;font-size:.85em}
.ci{color:#555;font-size:.85em}.warn{color:#b35900;cursor:help}.other{font-size:.8em}
small{color:#555}figure{display:inline-block;margin:.5rem}code{font-size:.9em}
"""

#: sorts the table body by the clicked column: numbers by data-sort, text otherwise, blanks last
SORT_SCRIPT = """
document.querySelectorAll("table.board th.sortable").forEach((th) => {
  const sort = () => {
    const table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const key = (tr) => tr.cells[col].dataset.sort ?? tr.cells[col].textContent.trim();
    const numeric = th.dataset.type === "number";
    const rows = Array.from(body.rows).sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");
      const c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return ascending ? c : -c;
    });
    body.append(...rows);
  };
  th.addEventListener("click", sort);
  th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
});
"""


def page(title: str, body: str, script: str = "") -> str:
    """A complete HTML document; ``title`` is escaped here, ``body`` must be escaped already."""
    tail = f"<script>{script}</script>" if script else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request: the site is a few static files
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}{tail}</body></html>\n"
    )


def link(text: str, url: str, title: str = "") -> str:
    """An escaped link, or escaped plain text (with the run id as a tooltip) when there is no URL."""
    tip = f' title="{escape(title)}"' if title else ""
    if not url:
        return f"<span{tip}>{escape(text)}</span>"
    return f'<a href="{escape(url)}"{tip}>{escape(text)}</a>'


def marks(row: TaskRow) -> str:
    """The headline's interval and a ⚠ whose tooltip is the run's warnings."""
    text = interval_text(row)
    html = f' <span class="ci" title="interval logged by the run">{escape(text)}</span>' if text else ""
    if row.warnings:
        tip = escape("\n".join(row.warnings))
        html += f' <span class="warn" title="{tip}" aria-label="warnings: {tip}">⚠</span>'
    return html


def score_cell(row: TaskRow | None, paper: float | None, others: int) -> str:
    """One task cell: our headline (linked to its run) with its marks, the paper's number, and a
    pointer to the runs of other configurations, which are never shown in this cell."""
    paper_html = f' <span class="paper">paper {escape(fmt(paper))}</span>' if paper is not None else ""
    other_html = (f' <a class="other" href="#other-configurations" title="also run in {others} other '
                  f'configuration(s), listed below">+{others}</a>') if others else ""
    if row is None or row.value is None:
        return f'<td class="num" data-sort="">{paper_html}{other_html}</td>'
    ours = link(fmt(row.value), row.url, f"run {row.run_id}")
    return f'<td class="num" data-sort="{row.value!r}">{ours}{marks(row)}{paper_html}{other_html}</td>'


def header_cells(view: View) -> str:
    """The sortable header: model fields, then one column per task with its headline and default configuration."""
    th = '<th class="sortable" tabindex="0" data-type="{kind}"{tip}>{label}</th>'
    fields = (("Model", "text"), ("Family", "text"), ("Size", "number"), ("Revision", "text"), ("Step", "number"))
    cells = [th.format(kind=kind, tip="", label=label) for label, kind in fields]
    cells += [th.format(kind="number", tip=f' title="default configuration {escape(c.default)}"',
                        label=f"{escape(c.task)}<br><small>{escape(head(c))}</small>") for c in view.columns]
    return "".join(cells)


def board_row(view: View, m: Line) -> str:
    """One table row: the model revision's fields and its default-configuration headlines."""
    step = "" if m.step is None else str(m.step)
    cells = [
        f'<td><a href="models/{slug(m.model)}.html">{escape(m.model)}</a></td>',
        f"<td>{escape(m.family)}</td>",
        f'<td data-sort="{escape(size_key(m.size))}">{escape(m.size)}</td>',
        f'<td title="{escape(m.revision)}"><code>{escape(short_revision(m.revision))}</code></td>',
        f'<td class="num" data-sort="{step}">{step}</td>',
    ]
    cells += [score_cell(m.tasks.get(c.task), c.published.get(m.model), len(view.others_of(m, c.task))) for c in view.columns]
    return "<tr>" + "".join(cells) + "</tr>"


def index_html(board: Leaderboard, view: View) -> str:
    """The front page: the sortable table, the other configurations and the published numbers."""
    sources = ", ".join(escape(name) for name in board.experiments.values())
    body = (
        "<h1>xlingbench leaderboard</h1>"
        f"<p>{len(view.lines)} model revisions, {len(board.rows)} task runs from <code>{escape(public_uri(board.tracking_uri))}</code> "
        f"(experiments: {sources}). Click a column header to sort; ↑ higher is better, ↓ lower is better, no arrow: "
        "descriptive. [low, high]: the run's interval; ⚠: the run logged warnings (hover to read them). Each column shows "
        "its task's default configuration: the one most models were run in.</p>"
        f'<table class="board" id="board"><thead><tr>{header_cells(view)}</tr></thead>'
        f'<tbody>{"".join(board_row(view, m) for m in view.lines)}</tbody></table>'
        + other_configurations(view)
        + published_table(view.columns)
    )
    return page("xlingbench leaderboard", body, SORT_SCRIPT)


def other_configurations(view: View) -> str:
    """Runs in another configuration than their task's default: listed apart, never compared."""
    if not view.others:
        return ""
    rows = "".join(
        f'<tr><td>{escape(r.task)}</td><td title="{escape(r.config)}"><code>{escape(short(r.config))}</code></td>'
        f'<td><a href="models/{slug(r.model)}.html">{escape(r.model)}</a></td><td><code>{escape(short_revision(r.revision))}</code></td>'
        f'<td class="num">{"" if r.step is None else r.step}</td>{score_cell(r, None, 0)}</tr>'
        for r in view.others
    )
    return (
        '<h2 id="other-configurations">Other configurations</h2><p>Runs whose configuration (task version, '
        "parameters, data, dtype: tag <code>xlingbench.config</code>) differs from their task's default. "
        "Their numbers are not comparable with the table above.</p>"
        "<table><thead><tr><th>Task</th><th>Configuration</th><th>Model</th><th>Revision</th><th>Step</th>"
        f"<th>Headline</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def published_table(columns: list[Column]) -> str:
    """The papers' headline numbers, for reference even where we have no run of that model."""
    rows = "".join(
        f'<tr><td>{escape(c.task)}</td><td>{escape(model)}</td><td class="num">{escape(fmt(value))}</td></tr>'
        for c in columns
        for model, value in sorted(c.published.items())
    )
    if not rows:
        return ""
    return (
        "<h2>Published numbers</h2><p>From the papers (see docs/tasks.md); shown beside ours where the model name matches.</p>"
        f"<table><thead><tr><th>Task</th><th>Model</th><th>Published</th></tr></thead><tbody>{rows}</tbody></table>"
    )


# --------------------------------------------------------------------------- detail pages


def line_metrics(view: View) -> list[tuple[str, str]]:
    """``(run id, step metric)`` for every declared line chart a detail page draws (histories are one request each)."""
    wanted = {c.task: [chart.metric for chart in c.charts if chart.kind == "line"] for c in view.columns}
    return [(r.run_id, metric) for r in view.runs for metric in wanted[r.task] if metric in r.metrics]


def run_charts(row: TaskRow, column: Column, histories: Histories) -> list[str]:
    """The task's declared charts over one run, from its metrics and step-metric histories."""
    steps = {chart.metric: histories.get((row.run_id, chart.metric), []) for chart in column.charts if chart.kind == "line"}
    label = f"{row.model}@{short_revision(row.revision)}"
    return [svg for chart in column.charts if (svg := draw(chart, {label: (row.metrics, steps)})) is not None]


def trajectory_points(rows: list[TaskRow], task: str) -> dict[tuple[str, int], float]:
    """``(configuration, step) -> headline`` of the newest run: one point per step and configuration."""
    newest: dict[tuple[str, int], tuple[int, float]] = {}
    for row in rows:
        if row.task == task and row.step is not None and row.value is not None:
            key = (row.config, row.step)
            newest[key] = max(newest.get(key, (-1, 0.0)), (row.start_time, row.value))
    return {key: value for key, (_, value) in newest.items()}


def trajectory_charts(rows: list[TaskRow], columns: list[Column]) -> list[str]:
    """Per task, the headline against the training step, one line per configuration (the default
    first), for a model with at least two checkpoints of that task."""
    out: list[str] = []
    for column in columns:
        points = trajectory_points(rows, column.task)
        if len({step for _, step in points}) < 2:
            continue
        series: dict[str, list[tuple[float, float]]] = {}
        for (config, step), value in sorted(points.items(), key=lambda item: (item[0][0] != column.default, item[0])):
            name = f"configuration {short(config)}" + (" (default)" if config == column.default else "")
            series.setdefault(name, []).append((float(step), value))
        out.append(line_chart(f"{column.task} over training", series, "training step", column.main_score))
    return out


def metrics_table(row: TaskRow) -> str:
    """All metrics of a run, in a collapsed block (escaped keys)."""
    rows = "".join(
        f'<tr><td><code>{escape(k)}</code></td><td class="num">{escape(fmt(v))}</td></tr>' for k, v in sorted(row.metrics.items())
    )
    return f"<details><summary>all {len(row.metrics)} metrics</summary><table>{rows}</table></details>"


def run_section(row: TaskRow, column: Column, histories: Histories) -> str:
    """One task run on a detail page: headline with interval, configuration, warnings, charts, metrics."""
    config = "default configuration" if row.config == column.default else "other configuration (not comparable with the board)"
    warnings = "".join(f"<li>{escape(w)}</li>" for w in row.warnings)
    figures = "".join(f"<figure>{svg}</figure>" for svg in run_charts(row, column, histories))
    return (
        f"<h3>{escape(row.task)}: {escape(row.main_score)} = {escape(fmt(row.value))}{marks(row)}</h3>"
        f'<p>run {link(row.run_id, row.url)}, {config} <code title="{escape(row.config)}">{escape(short(row.config))}</code></p>'
        + (f'<ul class="warnings">{warnings}</ul>' if warnings else "")
        + figures + metrics_table(row)
    )


def detail_html(model: str, view: View, histories: Histories) -> str:
    """A model's page: each revision's task runs (default configuration first) with their charts,
    then its checkpoint trajectories."""
    runs = [r for r in view.runs if r.model == model]
    sections = [f'<p><a href="../index.html">← leaderboard</a></p><h1>{escape(model)}</h1>']
    for m in reversed([line for line in view.lines if line.model == model]):
        step = "" if m.step is None else f", step {m.step}"
        sections.append(f"<h2>revision <code>{escape(m.revision)}</code>{escape(step)}</h2>")
        for c in view.columns:
            shown = ([m.tasks[c.task]] if c.task in m.tasks else []) + view.others_of(m, c.task)
            sections.extend(run_section(row, c, histories) for row in shown)
    trajectories = trajectory_charts(runs, view.columns)
    if trajectories:
        sections.append("<h2>Checkpoint trajectories</h2>" + "".join(f"<figure>{svg}</figure>" for svg in trajectories))
    return page(f"{model} - xlingbench", "".join(sections))


def fetch_histories(board: Leaderboard, view: View) -> Histories:
    """The step-metric histories the declared line charts draw (nothing else is fetched), from the board's store."""
    wanted = line_metrics(view)
    if not wanted:
        return {}
    if board.histories is not None:
        return board.histories(wanted)
    from mlflow.tracking import MlflowClient

    return metric_histories(MlflowClient(tracking_uri=board.tracking_uri), wanted)


def write_site(board: Leaderboard, out: Path) -> Path:
    """Write ``index.html`` and one page per model under ``out``; returns the index path.

    ``out`` must be new, empty or an earlier leaderboard (:mod:`xlingbench.core.outputs`): only the
    pages written here are replaced, and a page of a model no longer on the board is removed.
    """
    view = build_view(board)
    histories = fetch_histories(board, view)
    pages = {Path("index.html"): index_html(board, view)}
    for name in dict.fromkeys(m.model for m in view.lines):
        pages[Path("models") / f"{slug(name)}.html"] = detail_html(name, view, histories)
    replace_outputs(out, "leaderboard", pages)
    return out / "index.html"
