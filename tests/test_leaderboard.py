"""The collector, the renderers and the gate on a SQLite store planted through the xlingbench's MLflow sink."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from xlingbench.cli.main import app
from xlingbench.core.errors import UserError
from xlingbench.core.task import Chart
from xlingbench.leaderboard.collect import collect, public_uri, run_url
from xlingbench.leaderboard.render import render_markdown, slug, write_site
from xlingbench.leaderboard.view import build_view
from xlingbench.sinks.charts import draw
from tests.mlflow_plant import (
    PLUGIN_NAME, clone_models, full_results, install_plugin, metadata, model_revision, open_sink, plant, plugin_result, result,
)

EVIL = "<script>alert(1)</script>"
WARNING = "k lowered to 5 <b>"
STRANGER = "aardvark"  # a task in the store that no installed package provides


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module: creating one costs seconds, and the tests only read it."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture()
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The plugin task installed for one test: its entry point on sys.path, as pip would put it."""
    monkeypatch.syspath_prepend(str(install_plugin(tmp_path / "plugin")))


@pytest.fixture(scope="module")
def store(tracking_uri: str) -> dict[str, str]:
    """Two models (one with a hostile name), one checkpointed model, the plugin task and a task
    nobody installed; "tiny" and "xlm-roberta-xl" also ran script_separability in another configuration."""
    tracker = open_sink(tracking_uri)
    xlm_results = full_results(0.98) + [plugin_result(0.8, [WARNING])]
    tiny = [model_revision("tiny", "c" * 40, step=100), model_revision("tiny", "d" * 40, step=200)]
    xlm = model_revision("xlm-roberta-xl", "a" * 40, family="xlm-r", size="3.5B")
    other = [(result("script_separability", {"accuracy": 0.99, "accuracy/LATIN": 0.99}), metadata("script_separability"))]
    parents = {
        "xlm-roberta-xl": plant(tracker, xlm, xlm_results)[0],
        EVIL: plant(tracker, model_revision(EVIL, "b" * 40, family='"><img src=x onerror=alert(2)>', size="560M"),
                    full_results(0.70) + [(result(STRANGER, {"score": 3.0}), metadata(STRANGER, higher_is_better=False))])[0],
        "tiny@100": plant(tracker, tiny[0], full_results(0.40))[0],
        "tiny@200": plant(tracker, tiny[1], full_results(0.60))[0],
    }
    parents["xlm-task"] = plant(tracker, xlm, xlm_results[:1])[1]["script_separability"]  # a rerun, same values
    plant(tracker, tiny[1], [full_results(0.65)[0]])  # a rerun in the same configuration replaces 0.60
    parents["xlm-other"], tasks = plant(tracker, xlm, other, fingerprint="other")  # newer, other parameters
    parents["xlm-other-task"] = tasks["script_separability"]
    for step, model in zip((100, 200), tiny):
        plant(tracker, model, [(result("script_separability", {"accuracy": step / 1000}), metadata("script_separability"))],
              fingerprint="other")
    return parents


def site(tmp_path: Path, tracking_uri: str) -> tuple[str, str]:
    """Build the site; returns (index page, tiny's page)."""
    index = write_site(collect(tracking_uri), tmp_path / "site").read_text()
    return index, (tmp_path / "site" / "models" / f"{slug('tiny')}.html").read_text()


def test_collect_reads_every_task_run(tracking_uri: str, store: dict[str, str]) -> None:
    board = collect(tracking_uri)
    assert len(board.rows) == 4 * 4 + 1 + 1 + 1 + 1 + 1 + 2
    row = next(r for r in board.rows if r.model == "tiny" and r.step == 200 and r.task == "script_separability"
               and r.value == pytest.approx(0.60))
    assert (row.family, row.size, row.revision, row.main_score) == ("test-family", "270M", "d" * 40, "accuracy")
    assert (row.config, row.warnings, row.interval()) == ("planted-script_separability", (), None)
    assert row.metrics["accuracy/LATIN"] == pytest.approx(0.61)
    assert row.parent_run_id == store["tiny@200"]
    assert row.url == ""  # no UI behind a SQLite store
    counts = next(r for r in board.rows if r.task == "neighbour_script_count")
    assert counts.higher_is_better is None  # descriptive
    probe = next(r for r in board.rows if r.task == PLUGIN_NAME)
    assert probe.warnings == (WARNING,) and probe.interval() == pytest.approx((0.78, 0.82))


def test_default_configuration_is_the_one_most_models_ran(tracking_uri: str, store: dict[str, str], plugin: None) -> None:
    view = build_view(collect(tracking_uri))
    assert [c.task for c in view.columns] == ["script_separability", "neighbour_script_count", "translation_in_neighbours",
                                              "calign", PLUGIN_NAME, STRANGER]  # registry order, then the store's
    assert view.column("script_separability").default == "planted-script_separability"  # 3 models against 2
    xlm = next(m for m in view.lines if m.model == "xlm-roberta-xl")
    assert xlm.tasks["script_separability"].value == pytest.approx(0.98)  # the newer 0.99 ran in another configuration
    assert [(r.model, r.step, r.value) for r in view.others] == [
        ("tiny", 100, pytest.approx(0.1)), ("tiny", 200, pytest.approx(0.2)), ("xlm-roberta-xl", None, pytest.approx(0.99))]
    tiny = next(m for m in view.lines if m.step == 200)
    assert tiny.tasks["script_separability"].value == pytest.approx(0.65)  # the rerun in the same configuration


def test_site_shows_headlines_intervals_warnings_and_other_configurations(tmp_path: Path, tracking_uri: str,
                                                                          store: dict[str, str], plugin: None) -> None:
    index, _ = site(tmp_path, tracking_uri)
    for name in ("xlm-roberta-xl", "tiny", "3.5B", "xlm-r"):
        assert name in index
    board = index[index.index('id="board"'):index.index("</table>")]
    assert ">0.98<" in board and ">0.65<" in board and ">0.99<" not in board  # never the other configuration
    assert "paper 0.9924" in board and "paper 1.64" in board  # TaskMetadata.published beside ours
    assert "[1.88, 2.08]" in board and "[0.78, 0.82]" in board  # intervals beside headlines
    assert f'title="{WARNING.replace("<", "&lt;").replace(">", "&gt;")}"' in board and "⚠" in board
    assert "accuracy ↑" in board and "<small>mean_count</small>" in board  # no arrow on a descriptive headline
    assert "<small>score ↓</small>" in board  # an uninstalled task's column, from its runs' tags
    assert 'href="#other-configurations"' in board
    others = index[index.index('id="other-configurations"'):]
    assert ">0.99<" in others and ">other-sc<" in others


def test_detail_pages_draw_the_declared_charts(tmp_path: Path, tracking_uri: str, store: dict[str, str], plugin: None) -> None:
    _, tiny = site(tmp_path, tracking_uri)
    for title in ("Category vs rest: mean fold accuracy", "Distinct categories among a token and its neighbours",
                  "Translation among the 1 nearest neighbours", "Translation among the 10 nearest neighbours", "CALIGN by layer"):
        assert tiny.count(f"<title>{title}</title>") == 2, title  # one per revision, from the tasks' declarations
    xlm = (tmp_path / "site" / "models" / f"{slug('xlm-roberta-xl')}.html").read_text()
    assert "<title>Probe recall per language</title>" in xlm and "<title>Probe accuracy by layer</title>" in xlm
    assert "<li>k lowered to 5 &lt;b&gt;</li>" in xlm
    assert "other configuration (not comparable" in xlm  # its 0.99 run is shown apart


def test_an_uninstalled_task_gets_its_column_but_no_charts(tmp_path: Path, tracking_uri: str, store: dict[str, str]) -> None:
    index, _ = site(tmp_path, tracking_uri)
    assert f"{PLUGIN_NAME}<br><small>recall ↑</small>" in index
    xlm = (tmp_path / "site" / "models" / f"{slug('xlm-roberta-xl')}.html").read_text()
    assert "Probe recall per language" not in xlm and f"{PLUGIN_NAME}: recall = 0.8" in xlm


def test_trajectories_have_one_line_per_configuration_and_one_point_per_step(tmp_path: Path, tracking_uri: str,
                                                                              store: dict[str, str]) -> None:
    _, tiny = site(tmp_path, tracking_uri)
    chart = tiny[tiny.index("<title>script_separability over training</title>"):]
    chart = chart[:chart.index("</svg>")]
    assert chart.count("<polyline") == 2
    points = re.findall(r"<title>(configuration [^<]*)</title></circle>", chart)
    assert points == ["configuration planted- (default) @ 100: 0.4", "configuration planted- (default) @ 200: 0.65",
                      "configuration other-sc @ 100: 0.1", "configuration other-sc @ 200: 0.2"]
    assert "<title>calign over training</title>" in tiny


def test_bar_charts_leave_out_interval_bounds() -> None:
    chart = Chart("c", "bar", "accuracy", "t", "x", "y")
    svg = draw(chart, {"m": ({"accuracy/LATIN": 0.9, "accuracy/LATIN_ci_low": 0.8, "accuracy/LATIN_ci_high": 1.0}, {})})
    assert svg is not None and svg.count("<rect") == 1 and "_ci_" not in svg


def test_run_links_point_at_the_ui_without_credentials() -> None:
    assert run_url("http://u:secret@mlflow:5000/", "3", "abc") == "http://mlflow:5000/#/experiments/3/runs/abc?workflowType=machine_learning"
    assert run_url("sqlite:///x.db", "3", "abc") == ""
    assert public_uri("https://mlflow.example") == "https://mlflow.example"


def test_collect_errors_are_one_line_user_errors(tmp_path: Path, tracking_uri: str, store: dict[str, str]) -> None:
    with pytest.raises(UserError, match="no MLflow store"):
        collect(f"sqlite:///{tmp_path / 'missing.db'}")
    with pytest.raises(UserError, match="Did you mean xlingbench"):
        collect(tracking_uri, ["xlingbenc"])


def test_every_run_string_is_escaped(tmp_path: Path, tracking_uri: str, store: dict[str, str], plugin: None) -> None:
    write_site(collect(tracking_uri), tmp_path / "site")
    pages = [tmp_path / "site" / "index.html", *(tmp_path / "site" / "models").glob("*.html")]
    for page in pages:
        text = page.read_text()
        assert EVIL not in text and "<img src=x" not in text and "<b>" not in text, page
        assert len(re.findall(r"<script>", text)) <= 1, page  # only the sort script
    index = pages[0].read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in index


def test_markdown_table(tracking_uri: str, store: dict[str, str]) -> None:
    text = render_markdown(collect(tracking_uri))
    lines = text.splitlines()
    assert lines[0].startswith("| Model | Family | Size | Revision | Step | script_separability (accuracy ↑) "
                               "| neighbour_script_count (mean_count) |")
    assert lines[2 + 4] == ""  # header, rule, four model revisions
    assert "| xlm-roberta-xl | xlm-r | 3.5B | aaaaaaaaaaaa |  | 0.98 (paper 0.9924) | 1.98 [1.88, 2.08] (paper 1.64) |" in text
    assert "| script_separability | other-sc | xlm-roberta-xl | aaaaaaaaaaaa |  | 0.99 |" in text  # apart
    assert "0.8 [0.78, 0.82] ⚠" in text and f"- xlm-roberta-xl@aaaaaaaaaaaa {PLUGIN_NAME}: k lowered to 5 &lt;b&gt;" in text
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


def gate(*args: str) -> tuple[int, str]:
    """Run compare / check through the CLI."""
    outcome = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return outcome.exit_code, outcome.output


def test_compare_never_compares_two_configurations(tracking_uri: str, store: dict[str, str]) -> None:
    code, output = gate("compare", store["xlm-task"], store["xlm-other-task"], "--tracking-uri", tracking_uri)
    assert code == 1 and "config differs" in output and "cannot compare script_separability" in output
    assert "REGRESSION" not in output  # 0.98 -> 0.99 is not judged at all


def test_descriptive_headlines_are_shown_not_gated(tracking_uri: str, store: dict[str, str]) -> None:
    code, output = gate("compare", store["tiny@200"], store["tiny@100"], "--tracking-uri", tracking_uri)
    assert code == 1 and "REGRESSION" in output
    assert "descriptive" in output and "neighbour_script_count/mean_count" not in output.split("REGRESSION in")[1]


def test_check_pins_the_configuration(tmp_path: Path, tracking_uri: str, store: dict[str, str]) -> None:
    expect = tmp_path / "expected.json"
    assert gate("check", "--expect", str(expect), "--run", store["xlm-roberta-xl"], "--tracking-uri", tracking_uri,
                "--write-expect")[0] == 0
    written = json.loads(expect.read_text())
    assert written["xlingbench.config"]["script_separability"] == "planted-script_separability"
    assert "neighbour_script_count" not in written  # descriptive: never gated
    code, output = gate("check", "--expect", str(expect), "--run", store["xlm-other"], "--tracking-uri", tracking_uri)
    assert code == 1 and "config differs" in output
    toml = tmp_path / "expected.toml"
    assert gate("check", "--expect", str(toml), "--run", store["xlm-roberta-xl"], "--tracking-uri", tracking_uri, "--write-expect")[0] == 0
    assert gate("check", "--expect", str(toml), "--run", store["xlm-roberta-xl"], "--tracking-uri", tracking_uri)[0] == 0
    unpinned = tmp_path / "unpinned.json"
    unpinned.write_text(json.dumps({"script_separability": {"accuracy": 0.98}}))
    assert gate("check", "--expect", str(unpinned), "--run", store["xlm-other"], "--tracking-uri", tracking_uri)[0] == 0


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
