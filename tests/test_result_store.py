"""Issue 23: one identity per result, and a JSON results folder that is a store like MLflow's.

A planted tiny model runs one task in two configurations and two dtypes into a results folder
(four files, none overwritten, all skipped on rerun); the board built from the folder equals the
board built from the MLflow store of the same runs; ``check --results-dir`` gates from the folder
alone; a ``sqlite:///...?timeout=20`` URI works for every command; a run file drives ``run``.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.tiny_models import checkpointed_model
from xlingbench.cli.main import app
from xlingbench.leaderboard.collect import board_of, collect
from xlingbench.leaderboard.render import render_markdown
from xlingbench.sinks.delivery import DELIVERY
from xlingbench.sinks.json_store import JsonStore

MODEL = "tiny/store"
SMALL = ["--set", "min_tokens=30", "--set", "sample=1.0", "--set", "neighbours=5"]


@pytest.fixture(scope="module")
def model(tmp_path_factory, hub_cache) -> str:
    checkpointed_model(tmp_path_factory.mktemp("store"), hub_cache, MODEL, (100,))
    return MODEL


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_two_configurations_and_two_dtypes_make_four_files_and_a_rerun_skips_them(model: str, tmp_path: Path) -> None:
    results, cache = tmp_path / "results", tmp_path / "cache"
    configs = [["--set", "min_tokens=30"], ["--set", "min_tokens=20"]]
    runs = [[*config, "--dtype", dtype] for config in configs for dtype in ("float32", "bfloat16")]
    for extra in runs:
        code, output = invoke("run", "-m", model, "-r", "step100@100", "-t", "script_separability", *extra, "--sink", "json",
                              "--results-dir", str(results), "--cache-dir", str(cache))
        assert code == 0, output
        assert DELIVERY.logged == 1  # a JSON-only run counts what it logged (the Ctrl-C line says it)
    files = sorted(results.rglob("*.json"))
    assert len(files) == 4
    documents = [json.loads(p.read_text()) for p in files]
    assert len({d["task_key"] for d in documents}) == 4 and all(p.stem == d["task_key"] for p, d in zip(files, documents))
    assert {d["model"]["provenance"]["dtype"] for d in documents} == {"float32", "bfloat16"}
    written = {p: p.stat().st_mtime_ns for p in files}
    for extra in runs:
        code, output = invoke("run", "-m", model, "-r", "step100@100", "-t", "script_separability", *extra, "--sink", "json",
                              "--results-dir", str(results), "--cache-dir", str(cache))
        assert code == 0 and "skipped 1 task runs already in the store" in output, output
    assert {p: p.stat().st_mtime_ns for p in results.rglob("*.json")} == written  # nothing recomputed or rewritten


def test_a_version_1_file_is_read_and_skipped_by_its_task_key(model: str, tmp_path: Path) -> None:
    results, cache = tmp_path / "results", tmp_path / "cache"
    args = ["run", "-m", model, "-r", "step100@100", "-t", "script_separability", *SMALL[:2], "--sink", "json",
            "--results-dir", str(results), "--cache-dir", str(cache)]
    assert invoke(*args)[0] == 0
    (path,) = results.rglob("*.json")
    document = json.loads(path.read_text())
    document["schema_version"], document["result"]["info"]["task_key"] = 1, document["task_key"]
    old = path.parent.parent / f"{path.parent.name}.json"  # version 1's <model>/<revision>/<task>.json
    old.write_text(json.dumps(document))
    shutil.rmtree(path.parent)
    (row,) = JsonStore(results).rows()
    assert row.task_key == document["task_key"] and row.run_id.endswith("/script_separability.json")
    code, output = invoke(*args)
    assert code == 0 and "skipped 1 task runs" in output, output


@pytest.fixture(scope="module")
def both(model: str, tmp_path_factory) -> tuple[str, Path, Path]:
    """Two tasks logged to MLflow and a results folder at once, in a store whose URI has a query."""
    root = tmp_path_factory.mktemp("both")
    uri = f"sqlite:///{root / 'm.db'}?timeout=20"
    code, output = invoke("run", "-m", model, "-r", "step100@100", "-t", "script_separability", "-t", "neighbour_script_count",
                          *SMALL, "--sink", "mlflow", "--sink", "json", "--tracking-uri", uri,
                          "--results-dir", str(root / "results"), "--cache-dir", str(root / "cache"))
    assert code == 0, output
    return uri, root / "results", root


def test_the_board_of_a_results_folder_equals_the_board_of_the_mlflow_store(both) -> None:
    uri, results, _ = both
    from_mlflow, from_folder = collect(uri), board_of(JsonStore(results))
    assert render_markdown(from_folder) == render_markdown(from_mlflow)
    keyed = lambda board: {(r.model, r.revision, r.task): (r.value, r.config, r.task_key, r.metrics, r.warnings, r.step)  # noqa: E731
                           for r in board.rows}
    assert keyed(from_folder) == keyed(from_mlflow) and len(from_folder.rows) == 2


def test_leaderboard_compare_and_check_read_a_results_folder_or_a_uri_with_a_query(both) -> None:
    uri, results, root = both
    for store in (["--tracking-uri", uri], ["--results-dir", str(results)]):
        code, output = invoke("leaderboard", *store, "--format", "markdown", "--out", "-")
        assert code == 0 and "script_separability" in output, output
    code, output = invoke("compare", "model=tiny/store", "model=tiny/store", "--results-dir", str(results))
    assert code == 0 and "ok" in output, output
    code, output = invoke("compare", "xlingbench:model=tiny/store", "xlingbench:model=tiny/store", "--tracking-uri", uri)
    assert code == 0, output
    expect = root / "expect.json"
    code, output = invoke("check", "--expect", str(expect), "--run", "model=tiny/store", "--results-dir", str(results), "--write-expect")
    assert code == 0 and "1 task headlines" in output, output  # the descriptive neighbour count is never gated
    code, output = invoke("check", "--expect", str(expect), "--run", "model=tiny/store", "--results-dir", str(results))
    assert code == 0, output
    code, output = invoke("check", "--expect", str(expect), "--run", "xlingbench:model=tiny/store", "--tracking-uri", uri)
    assert code == 0, output
    planted = json.loads(expect.read_text())
    entry = planted["script_separability"]["accuracy"]
    for bound in {"value", "low", "high"} & set(entry):  # the run now falls short of the expected value and interval
        entry[bound] += 0.5
    expect.write_text(json.dumps(planted))
    code, output = invoke("check", "--expect", str(expect), "--run", "model=tiny/store", "--results-dir", str(results))
    assert code == 1 and "REGRESSION" in output, output


def test_both_stores_at_once_is_one_line(both) -> None:
    uri, results, _ = both
    code, output = invoke("leaderboard", "--results-dir", str(results), "--tracking-uri", uri, "-f", "json")
    assert code == 2 and output.startswith("error: --results-dir reads a JSON results folder") and len(output.splitlines()) == 1


def test_a_run_file_drives_run_and_the_command_line_wins(model: str, tmp_path: Path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(f'models = ["{model}"]\nrevisions = ["step100@100"]\ntasks = ["script_separability"]\n'
                    'sinks = ["json"]\nresults_dir = "out"\n[set]\n"script_separability.min_tokens" = 30\nfolds = 2\n')
    code, output = invoke("run", "--config", str(grid), "--cache-dir", str(tmp_path / "cache"), "--set", "folds=3")
    assert code == 0, output
    (path,) = (tmp_path / "out").rglob("*.json")
    document = json.loads(path.read_text())
    assert document["result"]["params"]["min_tokens"] == 30 and document["result"]["params"]["folds"] == 3
    assert document["model"]["provenance"]["run_file"] == "grid.toml"
    assert len(document["model"]["provenance"]["run_file_sha256"]) == 64
    grid.write_text('modles = ["x"]\n')
    code, output = invoke("run", "--config", str(grid))
    assert code == 2 and "'modles'" in output and "did you mean 'model'" in output, output


def test_a_result_another_run_logged_meanwhile_is_skipped_at_write_time(model: str, tmp_path: Path) -> None:
    import xlingbench

    class Racing:
        """A store another run writes the same task key to between this run's start and its write."""

        def __init__(self) -> None:
            self.asked, self.wrote = 0, []

        def finished(self, keys: set[str]) -> dict[str, str]:
            self.asked += 1
            return {} if self.asked == 1 else {key: "theirs" for key in keys}

        def write(self, outcome) -> str:
            self.wrote.append(outcome.task_key)
            return "mine"

        def finish_model(self, model, outcomes) -> None:
            pass

    sink = Racing()
    outcomes = xlingbench.evaluate([model], ["script_separability"], [sink], revisions=["step100@100"],
                                   params={"script_separability": {"min_tokens": 30}}, cache_dir=tmp_path / "cache", resume=True)
    assert outcomes == [] and sink.wrote == [] and sink.asked == 2  # asked at start (nothing) and before writing (theirs)
