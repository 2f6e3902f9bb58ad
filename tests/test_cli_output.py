"""The command line read by scripts and CI logs: through a pipe (not a terminal), nothing is cut.

Every command runs as a subprocess with stdout a pipe and ``COLUMNS=40``, as in a CI log: a table
folded to the width would split names, Hub ids and revisions, and ``grep`` would miss them.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from tests.test_cli import planted  # noqa: F401  (the module-scoped tiny model with planted scripts)
from xlingbench.core import params as typed
from xlingbench.inputs.registry import Checkpoint, ModelSpec, load_models
from xlingbench.tasks.registry import load_task, task_names

ROOT = Path(__file__).resolve().parents[1]
TASKS_1_2 = ["-t", "script_separability", "-t", "neighbour_script_count",
             "--set", "script_separability.min_tokens=20", "--set", "neighbour_script_count.sample=1.0"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m xlingbench ARGS`` with stdout and stderr pipes and a narrow COLUMNS."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "40"}
    done = subprocess.run([sys.executable, "-m", "xlingbench", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def _line_with(output: str, *parts: str) -> str:
    """The one line holding every one of ``parts``, whole."""
    lines = [line for line in output.splitlines() if all(part in line for part in parts)]
    assert len(lines) == 1, f"{parts} on {len(lines)} lines of:\n{output}"
    return lines[0]


def test_models_lists_every_name_hub_id_and_revision_whole():
    output = _cli("models").stdout
    for spec in load_models().values():
        _line_with(output, f" {spec.name} ", f" {spec.hub_id} ", f" {spec.revision}")


def test_checkpoints_are_listed_whole_with_their_steps():
    with_checkpoints = [spec for spec in load_models().values() if spec.checkpoints]
    assert with_checkpoints
    for spec in with_checkpoints:
        output = _cli("models", "--checkpoints", spec.name).stdout
        _line_with(output, spec.name, spec.hub_id)  # the title, unfolded
        for point in spec.checkpoints:
            _line_with(output, f" {point.step} ", f" {point.revision} ")


def test_tasks_lists_every_task_on_one_line_with_its_headline_and_reference():
    output = _cli("tasks", "--params").stdout
    for name in task_names():
        meta = load_task(name).metadata
        _line_with(output, f" {name} ", f" {meta.main_score} ", meta.reference)
    grep = subprocess.run(["grep", "neighbour_script_count"], input=output, capture_output=True, text=True)
    assert grep.returncode == 0


def test_models_json_is_the_whole_registry():
    document = json.loads(_cli("models", "--json").stdout)
    specs = [ModelSpec(**{**entry, "checkpoints": tuple(Checkpoint(**c) for c in entry["checkpoints"])})
             for entry in document["models"]]
    assert specs == list(load_models().values())
    one = json.loads(_cli("models", "--checkpoints", "bloom-560m-intermediate", "--json").stdout)
    assert [entry["name"] for entry in one["models"]] == ["bloom-560m-intermediate"]


def test_tasks_json_gives_metadata_and_typed_defaults_that_build_the_default_params():
    document = json.loads(_cli("tasks", "--json").stdout)
    assert [entry["name"] for entry in document["tasks"]] == task_names()
    for entry in document["tasks"]:
        task = load_task(entry["name"])
        parameters = entry.pop("parameters")
        assert entry == json.loads(json.dumps(dataclasses.asdict(task.metadata)))  # options, charts, published ...
        assert [(p["name"], p["type"]) for p in parameters] == [(n, t) for n, t, _ in typed.describe(task.params)]
        defaults = {p["name"]: p["default"] for p in parameters}
        assert typed.build(task.metadata.name, task.params, defaults) == task.params()


def test_run_prints_a_line_per_task_and_each_revision_table_when_it_is_done(planted, tracking_uri, tmp_path):  # noqa: F811
    output = _cli("run", "-m", "tiny/planted", "-r", "main@1", "-r", "main@2", *TASKS_1_2,
                  "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path / "cache")).stdout
    lines = output.splitlines()
    done = [line for line in lines if line.startswith("done ")]
    assert [line.split()[3] for line in done] == ["script_separability", "neighbour_script_count"] * 2
    client = mlflow.MlflowClient(tracking_uri)
    for line in done:
        _, model, revision, task, headline, seconds, where = line.split()
        run = client.get_run(where.removeprefix("mlflow="))
        assert model == "tiny/planted" and revision.endswith(("@1", "@2")) and seconds.endswith("s")
        assert run.data.tags["xlingbench.task"] == task
        assert run.data.tags["xlingbench.revision"].startswith(revision.split("@")[0])
        name, value = headline.split("=")
        assert float(value) == pytest.approx(run.data.metrics[name], abs=1e-4)
    # the first revision's table comes before the second revision's first line, not at the end
    first_table = next(i for i, line in enumerate(lines) if line.startswith("tiny/planted @ ") and line.rstrip().endswith("@1"))
    assert lines.index(done[1]) < first_table < lines.index(done[2])
    assert "LOAD REPORT" not in output


def test_run_json_round_trips_to_the_mlflow_runs(planted, tracking_uri, tmp_path):  # noqa: F811
    done = _cli("run", "-m", "tiny/planted", *TASKS_1_2, "--json",
                "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path / "cache"))
    document = json.loads(done.stdout)
    assert json.loads(json.dumps(document)) == document
    assert [r["task"] for r in document["outcomes"]] == ["script_separability", "neighbour_script_count"]
    client = mlflow.MlflowClient(tracking_uri)
    for record in document["outcomes"]:
        run = client.get_run(record["run_id"])
        tags = run.data.tags
        assert (tags["xlingbench.model"], tags["xlingbench.revision"], tags["xlingbench.task"], tags["xlingbench.config"]) == \
               (record["model"], record["revision"], record["task"], record["fingerprint"])
        assert record["value"] == pytest.approx(run.data.metrics[record["headline"]])
        assert f"done tiny/planted {record['revision'][:12]} {record['task']} " in done.stderr  # people read stderr


@pytest.fixture()
def library_loggers():
    """Restore the loggers and transformers' bars the CLI reroutes, so other tests see them as before."""
    import transformers.utils.logging as transformers_logging

    saved = {name: (logging.getLogger(name).handlers, logging.getLogger(name).propagate)
             for name in ("transformers", "huggingface_hub")}
    yield
    for name, (handlers, propagate) in saved.items():
        logging.getLogger(name).handlers, logging.getLogger(name).propagate = handlers, propagate
    transformers_logging.enable_progress_bar()


def test_library_messages_go_to_a_log_file_not_the_console(library_loggers, tmp_path, capfd):
    from transformers.utils import logging as transformers_logging

    from xlingbench.cli.main import _send_library_logs_to_file

    path = _send_library_logs_to_file(tmp_path)
    transformers_logging.get_logger("transformers.modeling_utils").warning("XLMRobertaModel LOAD REPORT: pooler MISSING")
    logging.getLogger("huggingface_hub.file_download").warning("a download notice")
    captured = capfd.readouterr()
    assert "LOAD REPORT" not in captured.err + captured.out and "download notice" not in captured.err
    assert path == tmp_path / "logs" / "libraries.log"
    assert "LOAD REPORT: pooler MISSING" in path.read_text() and "a download notice" in path.read_text()


def test_progress_bars_are_labelled_with_the_scope_the_runner_sets():
    from xlingbench.core.progress import label, scope

    with scope("xlm-roberta-base calign"):
        assert label("concepts per layer") == "xlm-roberta-base calign: concepts per layer"
    assert label("concepts per layer") == "concepts per layer"
