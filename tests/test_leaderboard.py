"""The collector and the renderers on a SQLite store planted through the xlingbench's MLflow sink."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from xlingbench.cli.main import app
from xlingbench.core.errors import UserError
from xlingbench.leaderboard.collect import collect, public_uri, run_url
from xlingbench.leaderboard.render import published_numbers, render_markdown, slug, write_site
from tests.mlflow_plant import clone_models, full_results, model_revision, open_sink, plant

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module: creating one costs seconds, and the tests only read it."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def store(tracking_uri: str) -> dict[str, str]:
    """Two models (one with a hostile name), one checkpointed model with a trajectory."""
    tracker = open_sink(tracking_uri)
    parents = {
        "xlm-roberta-xl": plant(tracker, model_revision("xlm-roberta-xl", "a" * 40, family="xlm-r", size="3.5B"), full_results(0.98))[0],
        EVIL: plant(tracker, model_revision(EVIL, "b" * 40, family='"><img src=x onerror=alert(2)>', size="560M"), full_results(0.70))[0],
        "tiny@100": plant(tracker, model_revision("tiny", "c" * 40, step=100), full_results(0.40))[0],
        "tiny@200": plant(tracker, model_revision("tiny", "d" * 40, step=200), full_results(0.60))[0],
    }
    return parents


def test_collect_reads_every_task_run_and_trajectory(tracking_uri: str, store: dict[str, str]) -> None:
    board = collect(tracking_uri)
    assert len(board.rows) == 4 * 4
    row = next(r for r in board.rows if r.model == "tiny" and r.step == 200 and r.task == "script_separability")
    assert (row.family, row.size, row.revision, row.main_score) == ("test-family", "270M", "d" * 40, "accuracy")
    assert row.value == pytest.approx(0.60)
    assert row.metrics["accuracy/LATIN"] == pytest.approx(0.61)
    assert row.parent_run_id == store["tiny@200"]
    assert row.url == ""  # no UI behind a SQLite store
    counts = next(r for r in board.rows if r.task == "neighbour_script_count")
    assert counts.higher_is_better is False
    keys = ("calign/calign_max", "neighbour_script_count/mean_count", "script_separability/accuracy",
            "translation_in_neighbours/hit_at_10")
    assert [(t.model, t.metric_keys) for t in board.trajectories] == [("tiny", keys)]


def test_run_links_point_at_the_ui_without_credentials() -> None:
    assert run_url("http://u:secret@mlflow:5000/", "3", "abc") == "http://mlflow:5000/#/experiments/3/runs/abc"
    assert run_url("sqlite:///x.db", "3", "abc") == ""
    assert public_uri("https://mlflow.example") == "https://mlflow.example"


def test_collect_errors_are_one_line_user_errors(tmp_path: Path, tracking_uri: str, store: dict[str, str]) -> None:
    with pytest.raises(UserError, match="no MLflow store"):
        collect(f"sqlite:///{tmp_path / 'missing.db'}")
    with pytest.raises(UserError, match="Did you mean xlingbench"):
        collect(tracking_uri, ["xlingbenc"])


def test_site_shows_models_headlines_published_numbers_and_charts(tmp_path: Path, tracking_uri: str, store: dict[str, str]) -> None:
    board = collect(tracking_uri)
    index = write_site(board, tmp_path / "site").read_text()
    for name in ("xlm-roberta-xl", "tiny", "3.5B", "xlm-r"):
        assert name in index
    assert ">0.98<" in index and ">0.6<" in index  # headlines of two lines
    assert "paper 0.9924" in index and "paper 1.64" in index  # TaskMetadata.published beside ours
    detail = (tmp_path / "site" / "models" / f"{slug('tiny')}.html").read_text()
    assert "Accuracy per category" in detail and "hit@k per language pair" in detail
    assert "calign per layer" in detail and "Distinct categories among" in detail
    assert "script_separability over training" in detail
    assert detail.count("<svg") == 2 * 4 + 1  # two revisions x four charts + one trajectory


def test_every_run_string_is_escaped(tmp_path: Path, tracking_uri: str, store: dict[str, str]) -> None:
    write_site(collect(tracking_uri), tmp_path / "site")
    pages = [tmp_path / "site" / "index.html", *(tmp_path / "site" / "models").glob("*.html")]
    for page in pages:
        text = page.read_text()
        assert EVIL not in text and "<img src=x" not in text, page
        assert len(re.findall(r"<script>", text)) <= 1, page  # only the sort script
    index = pages[0].read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in index


def test_markdown_table(tracking_uri: str, store: dict[str, str]) -> None:
    board = collect(tracking_uri)
    text = render_markdown(board, published_numbers(["script_separability"]))
    lines = text.splitlines()
    assert lines[0].startswith("| Model | Family | Size | Revision | Step | script_separability (accuracy ↑)")
    assert len(lines) == 2 + 4  # header, rule, four model revisions
    assert "| xlm-roberta-xl | xlm-r | 3.5B | aaaaaaaaaaaa |  | 0.98 (paper 0.9924) |" in text
    assert EVIL not in text and "&lt;script&gt;" in text


def test_cli_writes_markdown_and_site(tmp_path: Path, tracking_uri: str, store: dict[str, str]) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["leaderboard", "--tracking-uri", tracking_uri, "--format", "markdown", "--out", "-"])
    assert result.exit_code == 0, result.output
    assert "| tiny |" in result.output
    result = runner.invoke(app, ["leaderboard", "--tracking-uri", tracking_uri, "--out", str(tmp_path / "s")])
    assert result.exit_code == 0 and (tmp_path / "s" / "index.html").exists()
    result = runner.invoke(app, ["leaderboard", "--tracking-uri", tracking_uri, "--experiment", "nope"])
    assert result.exit_code == 2 and "error: no MLflow experiment named 'nope'" in result.output


def test_collector_issues_one_search_for_hundreds_of_runs(tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = open_sink(tracking_uri, "bulk")
    parent, _ = plant(tracker, model_revision("template", "e" * 40), full_results(0.5)[:2])
    clone_models(tracking_uri, parent, 70, "bulk")  # 71 models x (parent + 2 tasks) = 213 runs
    calls: list[int] = []
    original = MlflowClient.search_runs

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("max_results", 1000))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "search_runs", counting)
    board = collect(tracking_uri, ["bulk"])
    assert len(board.rows) == 71 * 2
    assert len(calls) == 1
