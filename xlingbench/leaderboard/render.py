"""Render a :class:`~xlingbench.leaderboard.collect.Leaderboard` as a static site or a Markdown table.

The site is self-contained (inline CSS, inline SVG charts, a few lines of vanilla JS for
sorting; no CDN), so it can be published as a CI artifact or on any static host. Every
string that came from a run (model names, tags, metric keys, params) goes through
:func:`html.escape`; no run data is ever placed inside a ``<script>`` element.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from xlingbench.core.errors import UserError
from xlingbench.leaderboard.collect import (
    Leaderboard,
    TaskRow,
    latest_per_model_task,
    metric_histories,
    public_uri,
)
from xlingbench.sinks.charts import bar_chart, line_chart

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

#: the order of the paper's tasks; any other task follows alphabetically
TASK_ORDER = ("script_separability", "neighbour_script_count", "translation_in_neighbours", "calign", "colap")
#: tasks whose headline is logged per layer (step = layer)
CURVE_TASKS = ("calign", "colap")
#: the neighbour-count distribution as neighbour_script_count logs it (columns categories, queries, share)
COUNT_TABLE = "tables/distribution.csv"
HIT_AT = re.compile(r"^hit_at_(\d+)/(.+)$")
SIZE = re.compile(r"^\s*([\d.]+)\s*([KMBT]?)", re.IGNORECASE)


@dataclass(frozen=True)
class ModelRevision:
    """One line of the leaderboard: a model at one revision (checkpoint), with its task runs."""

    model: str
    revision: str
    family: str
    size: str
    step: int | None
    tasks: dict[str, TaskRow]


def group(board: Leaderboard) -> tuple[list[ModelRevision], list[str]]:
    """Leaderboard lines (sorted by model, then step) and the task columns (paper order first)."""
    lines: dict[tuple[str, str], dict[str, TaskRow]] = {}
    for (model, revision, task), row in latest_per_model_task(board.rows).items():
        lines.setdefault((model, revision), {})[task] = row
    models = [
        ModelRevision(model, revision, first.family, first.size, first.step, tasks)
        for (model, revision), tasks in lines.items()
        for first in [next(iter(tasks.values()))]
    ]
    models.sort(key=lambda m: (m.model, m.step if m.step is not None else -1, m.revision))
    seen = {task for m in models for task in m.tasks}
    columns = [t for t in TASK_ORDER if t in seen] + sorted(seen - set(TASK_ORDER))
    return models, columns


def published_numbers(tasks: Iterable[str]) -> dict[str, dict[str, float]]:
    """``task -> {registry model name: published headline}`` from each task's TaskMetadata.

    Only the tasks on the board are imported (through the task registry's entry points); a
    task that cannot be imported simply has no published numbers, and the board still renders.
    """
    from xlingbench.tasks.registry import load_task, task_names

    wanted = set(tasks)
    found: dict[str, dict[str, float]] = {}
    for name in (n for n in task_names() if n in wanted):
        try:
            published = load_task(name).metadata.published
        except UserError:
            continue
        if published:
            found[name] = dict(published)
    return found


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


def arrow(higher_is_better: bool) -> str:
    """The direction marker shown next to a headline name."""
    return "↑" if higher_is_better else "↓"


def column_heads(models: list[ModelRevision], columns: list[str]) -> dict[str, str]:
    """``task -> "main_score ↑"`` from the first run of each task."""
    heads: dict[str, str] = {}
    for m in models:
        for task, row in m.tasks.items():
            heads.setdefault(task, f"{row.main_score} {arrow(row.higher_is_better)}")
    return {task: heads[task] for task in columns}


# --------------------------------------------------------------------------- Markdown


def md(text: str) -> str:
    """Escape for a Markdown table cell (GitHub renders inline HTML, so escape that too)."""
    return escape(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(board: Leaderboard, published: dict[str, dict[str, float]]) -> str:
    """The models x tasks table as GitHub-flavoured Markdown (for ``$GITHUB_STEP_SUMMARY``)."""
    models, columns = group(board)
    heads = column_heads(models, columns)
    header = ["Model", "Family", "Size", "Revision", "Step"] + [f"{t} ({heads[t]})" for t in columns]
    lines = ["| " + " | ".join(md(h) for h in header) + " |", "|" + "---|" * len(header)]
    for m in models:
        cells = [md(m.model), md(m.family), md(m.size), md(m.revision[:12]), "" if m.step is None else str(m.step)]
        for task in columns:
            row = m.tasks.get(task)
            value = md(fmt(row.value)) if row else ""
            if row and row.url and value:
                value = f"[{value}]({row.url})"
            paper = published.get(task, {}).get(m.model)
            cells.append(value + (f" (paper {fmt(paper)})" if paper is not None else ""))
        lines.append("| " + " | ".join(cells) + " |")
    if not models:
        lines.append("| " + " | ".join(["no runs"] + [""] * (len(header) - 1)) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HTML

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th.sortable{cursor:pointer;background:#f4f4f4;user-select:none}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}.paper{color:#777;font-size:.85em}
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


def score_cell(row: TaskRow | None, paper: float | None) -> str:
    """One task cell: our headline (linked to its MLflow run) and the paper's number beside it."""
    paper_html = f' <span class="paper">paper {escape(fmt(paper))}</span>' if paper is not None else ""
    if row is None or row.value is None:
        return f'<td class="num" data-sort="">{paper_html}</td>'
    ours = link(fmt(row.value), row.url, f"run {row.run_id}")
    return f'<td class="num" data-sort="{row.value!r}">{ours}{paper_html}</td>'


def index_html(board: Leaderboard, published: dict[str, dict[str, float]]) -> str:
    """The front page: the sortable models x tasks table and the published reference numbers."""
    models, columns = group(board)
    heads = column_heads(models, columns)
    th = '<th class="sortable" tabindex="0" data-type="{kind}">{label}</th>'
    header = "".join(th.format(kind="text", label=h) for h in ("Model", "Family")) + th.format(
        kind="number", label="Size"
    ) + th.format(kind="text", label="Revision") + th.format(kind="number", label="Step")
    header += "".join(
        th.format(kind="number", label=f"{escape(t)}<br><small>{escape(heads[t])}</small>") for t in columns
    )
    body_rows = []
    for m in models:
        cells = [
            f'<td><a href="models/{slug(m.model)}.html">{escape(m.model)}</a></td>',
            f"<td>{escape(m.family)}</td>",
            f'<td data-sort="{escape(size_key(m.size))}">{escape(m.size)}</td>',
            f'<td title="{escape(m.revision)}"><code>{escape(m.revision[:12])}</code></td>',
            f'<td class="num" data-sort="{"" if m.step is None else m.step}">{"" if m.step is None else m.step}</td>',
        ]
        cells += [score_cell(m.tasks.get(t), published.get(t, {}).get(m.model)) for t in columns]
        body_rows.append("<tr>" + "".join(cells) + "</tr>")
    sources = ", ".join(escape(name) for name in board.experiments.values())
    body = (
        "<h1>xlingbench leaderboard</h1>"
        f"<p>{len(models)} model revisions, {len(board.rows)} task runs from <code>{escape(public_uri(board.tracking_uri))}</code> "
        f"(experiments: {sources}). Click a column header to sort; ↑ higher is better, ↓ lower is better.</p>"
        f'<table class="board" id="board"><thead><tr>{header}</tr></thead><tbody>{"".join(body_rows)}</tbody></table>'
        + trajectory_links(board)
        + published_table(published)
    )
    return page("xlingbench leaderboard", body, SORT_SCRIPT)


def trajectory_links(board: Leaderboard) -> str:
    """Links to the pages of models with checkpoint trajectories (some have no task runs)."""
    models = sorted({t.model for t in board.trajectories})
    if not models:
        return ""
    items = "".join(f'<li><a href="models/{slug(m)}.html">{escape(m)}</a></li>' for m in models)
    return f"<h2>Checkpoint trajectories</h2><ul>{items}</ul>"


def published_table(published: dict[str, dict[str, float]]) -> str:
    """The papers' headline numbers, for reference even where we have no run of that model."""
    if not published:
        return ""
    rows = "".join(
        f'<tr><td>{escape(task)}</td><td>{escape(model)}</td><td class="num">{escape(fmt(value))}</td></tr>'
        for task, numbers in published.items()
        for model, value in sorted(numbers.items())
    )
    return (
        "<h2>Published numbers</h2><p>From the papers (see docs/tasks.md); shown beside ours where the model name matches.</p>"
        f"<table><thead><tr><th>Task</th><th>Model</th><th>Published</th></tr></thead><tbody>{rows}</tbody></table>"
    )


# --------------------------------------------------------------------------- detail pages


@dataclass(frozen=True)
class Extras:
    """What detail pages need beyond the search result: metric histories and count tables."""

    histories: dict[tuple[str, str], list[tuple[int, float]]]
    counts: dict[str, list[tuple[str, float]]]


def curve_key(row: TaskRow) -> str:
    """The per-layer metric of a CALIGN/COLAP run: the metric named after the task, else the headline."""
    return row.task if row.task in row.metrics else row.main_score


def fetch_extras(client: MlflowClient, board: Leaderboard) -> Extras:
    """Fetch the histories (per-layer curves, trajectories) and count tables the pages draw."""
    rows = latest_per_model_task(board.rows).values()
    wanted = [(r.run_id, curve_key(r)) for r in rows if r.task in CURVE_TASKS and curve_key(r) in r.metrics]
    wanted += [(t.run_id, key) for t in board.trajectories for key in t.metric_keys]
    counted = [r for r in rows if r.task == "neighbour_script_count" and r.artifact_uri]
    with ThreadPoolExecutor(max_workers=8) as pool:
        tables = pool.map(lambda r: count_table(r.artifact_uri, board.tracking_uri), counted)
        counts = {r.run_id: table for r, table in zip(counted, tables)}
    return Extras(histories=metric_histories(client, wanted) if wanted else {}, counts=counts)


def count_table(artifact_uri: str, tracking_uri: str) -> list[tuple[str, float]]:
    """``(distinct categories, queries)`` from a run's distribution table artifact; empty when absent.

    Downloads by the run's artifact URI (known from the search) rather than by run id, which
    would cost MLflow a run lookup per table.
    """
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = download_artifacts(artifact_uri=f"{artifact_uri}/{COUNT_TABLE}", dst_path=tmp, tracking_uri=tracking_uri)
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
        except (MlflowException, OSError):
            return []
    return [(r.get("categories") or "", float(r["queries"])) for r in rows if _is_number(r.get("queries") or "")]


def _is_number(text: str) -> bool:
    """Whether a CSV cell parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def charts(row: TaskRow, extras: Extras) -> list[str]:
    """The SVG charts for one task run, from its metrics, count table or per-layer history."""
    out: list[str] = []
    accuracy = {k.split("/", 1)[1]: v for k, v in row.metrics.items()
                if k.startswith("accuracy/") and not k.endswith(("_ci_low", "_ci_high"))}
    if accuracy:
        out.append(bar_chart("Accuracy per category", list(accuracy), {"accuracy": list(accuracy.values())}, "category", "accuracy"))
    out.extend(count_charts(row, extras))
    out.extend(hit_chart(row))
    history = extras.histories.get((row.run_id, curve_key(row)))
    if row.task in CURVE_TASKS and history:
        out.append(line_chart(f"{row.task} per layer", {curve_key(row): [(float(s), v) for s, v in history]}, "layer", "%"))
    return out


def count_charts(row: TaskRow, extras: Extras) -> list[str]:
    """The neighbour-count distribution from its table artifact, else the summary metrics (``*_count``)."""
    if row.task != "neighbour_script_count":
        return []
    counts = extras.counts.get(row.run_id)
    if counts:
        return [bar_chart("Distinct categories among a token and its neighbours", [c for c, _ in counts],
                          {"queries": [v for _, v in counts]}, "distinct categories", "queries")]
    summary = {k: v for k, v in sorted(row.metrics.items()) if k.endswith("_count")}
    if not summary:
        return []
    return [bar_chart("Distinct categories (summary)", list(summary), {"value": list(summary.values())}, "", "categories")]


def hit_chart(row: TaskRow) -> list[str]:
    """hit@k per language pair as grouped bars (one bar per k), from ``hit_at_<k>/<pair>`` metrics."""
    table: dict[int, dict[str, float]] = {}
    for key, value in row.metrics.items():
        match = HIT_AT.match(key)
        if match:
            table.setdefault(int(match.group(1)), {})[match.group(2)] = value
    if not table:
        return []
    pairs = sorted({p for by_pair in table.values() for p in by_pair})
    series = {f"hit@{k}": [table[k].get(p, math.nan) for p in pairs] for k in sorted(table)}
    return [bar_chart("hit@k per language pair", pairs, series, "language pair", "hit@k")]


def trajectory_charts(model: str, board: Leaderboard, extras: Extras) -> list[str]:
    """One line chart per task: each ``<task>/<metric>`` of the model's trajectory runs vs training step."""
    by_task: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for run in (t for t in board.trajectories if t.model == model):
        for key in run.metric_keys:
            task, _, metric = key.partition("/")
            points = [(float(s), v) for s, v in extras.histories.get((run.run_id, key), [])]
            if points:
                by_task.setdefault(task, {})[metric or task] = points
    return [line_chart(f"{task} over training", series, "training step", "value") for task, series in sorted(by_task.items())]


def metrics_table(row: TaskRow) -> str:
    """All metrics of a run, in a collapsed block (escaped keys)."""
    rows = "".join(
        f'<tr><td><code>{escape(k)}</code></td><td class="num">{escape(fmt(v))}</td></tr>' for k, v in sorted(row.metrics.items())
    )
    return f"<details><summary>all {len(row.metrics)} metrics</summary><table>{rows}</table></details>"


def detail_html(model: str, revisions: list[ModelRevision], board: Leaderboard, extras: Extras, columns: list[str]) -> str:
    """A model's page: each revision's task runs with their charts, then its checkpoint trajectories."""
    sections = [f'<p><a href="../index.html">← leaderboard</a></p><h1>{escape(model)}</h1>']
    for m in revisions:
        step = "" if m.step is None else f", step {m.step}"
        sections.append(f"<h2>revision <code>{escape(m.revision)}</code>{escape(step)}</h2>")
        for task in (t for t in columns if t in m.tasks):
            row = m.tasks[task]
            figures = "".join(f"<figure>{svg}</figure>" for svg in charts(row, extras))
            sections.append(
                f"<h3>{escape(task)}: {escape(row.main_score)} = {escape(fmt(row.value))}</h3>"
                f"<p>run {link(row.run_id, row.url)}</p>{figures}{metrics_table(row)}"
            )
    trajectories = trajectory_charts(model, board, extras)
    if trajectories:
        sections.append("<h2>Checkpoint trajectories</h2>" + "".join(f"<figure>{svg}</figure>" for svg in trajectories))
    return page(f"{model} - xlingbench", "".join(sections))


def write_site(board: Leaderboard, out: Path) -> Path:
    """Write ``index.html`` and one page per model under ``out``; returns the index path."""
    from mlflow.tracking import MlflowClient

    models, columns = group(board)
    extras = fetch_extras(MlflowClient(tracking_uri=board.tracking_uri), board)
    shutil.rmtree(out / "models", ignore_errors=True)  # no stale pages of models no longer in the runs
    (out / "models").mkdir(parents=True)
    index = out / "index.html"
    index.write_text(index_html(board, published_numbers(columns)), encoding="utf-8")
    by_model: dict[str, list[ModelRevision]] = {}
    for m in models:
        by_model.setdefault(m.model, []).append(m)
    for name in {t.model for t in board.trajectories} - set(by_model):
        by_model[name] = []
    for name, revisions in by_model.items():
        html = detail_html(name, revisions[::-1], board, extras, columns)
        (out / "models" / f"{slug(name)}.html").write_text(html, encoding="utf-8")
    return index
