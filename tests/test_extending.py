"""Extending xlingbench without touching it: a sixth task and a new sink from a separate package
(entry points), the JSON sink, the Python API without any MLflow store, and run-wide options
that only reach the tasks declaring them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xlingbench.cli.main import app
from xlingbench.core.task import TaskMetadata
from xlingbench.sinks.json_sink import from_document
from tests.tiny_models import encoder_model, planted_clusters, save_model, sentencepiece_tokenizer

runner = CliRunner()
GROUPS = {"latin": [f"\u2581{w}" for w in ("water", "fire", "stone", "wood", "iron", "salt")],
          "cyrillic": [f"\u2581{w}" for w in ("вода", "огонь", "камень", "дерево", "железо", "соль")]}

PLUGIN_TASK = '''
"""A sixth task from outside xlingbench: the mean L2 norm of the input embedding rows, by first letter."""
from dataclasses import dataclass

import numpy as np

from xlingbench.core.task import Chart, Task, TaskMetadata, TaskResult


@dataclass
class Params:
    scale: float = 1.0


def run(inputs, params):
    vocab = inputs.vocabulary
    norms = np.linalg.norm(vocab.float32_rows(), axis=1) * params.scale
    by_letter = {}
    for token, norm in zip(vocab.tokens, norms.tolist()):
        by_letter.setdefault(token.lstrip("\\u2581")[:1] or "?", []).append(norm)
    metrics = {"mean_norm": float(norms.mean()), **{f"norm/{k}": float(np.mean(v)) for k, v in by_letter.items()}}
    return TaskResult(task="embedding_norms", params={}, metrics=metrics)


TASK = Task(
    metadata=TaskMetadata(name="embedding_norms", description="Mean L2 norm of the input embeddings.",
                          reference="a plugin", main_score="mean_norm", version="1",
                          charts=(Chart("norms_by_letter", "bar", "norm", "Plugin chart: norm by first letter", "letter", "norm"),)),
    params=Params, run=run)
'''

PLUGIN_SINK = '''
"""A sink from outside xlingbench: every outcome as one JSON line in $RECORDER_FILE."""
import json
import os


class RecorderSink:
    def __init__(self, settings):
        self.path = os.environ["RECORDER_FILE"]

    def write(self, outcome):
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"model": outcome.model.name, "task": outcome.task.name,
                                     "headline": outcome.headline, "fingerprint": outcome.fingerprint}) + "\\n")
        return self.path

    def finish_model(self, model, outcomes):
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"finished": model.name, "tasks": len(outcomes)}) + "\\n")
'''


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A local tiny XLM-R model: two scripts, each a tight cluster."""
    pieces, rows = planted_clusters(GROUPS, dim=16)
    matrix = np.vstack([np.random.default_rng(1).normal(size=(4, 16)), rows]).astype(np.float32)
    return save_model(tmp_path_factory.mktemp("tiny") / "model", sentencepiece_tokenizer(pieces), encoder_model(matrix))


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    """An installed-looking package (a folder on PYTHONPATH with its dist-info) declaring a task and a sink."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "xlb_plugin").mkdir()
    (root / "xlb_plugin" / "__init__.py").write_text("")
    (root / "xlb_plugin" / "task.py").write_text(PLUGIN_TASK)
    (root / "xlb_plugin" / "sink.py").write_text(PLUGIN_SINK)
    info = root / "xlb_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xlb-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [xlingbench.tasks]
        embedding_norms = xlb_plugin.task:TASK

        [xlingbench.sinks]
        recorder = xlb_plugin.sink:RecorderSink
        """))
    return root


def _xlingbench(args: list[str], cwd: Path, plugin: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """The command in a fresh interpreter (entry points are read from the environment it starts with)."""
    environ = {**os.environ, "XLINGBENCH_PROGRESS": "0", **env}
    if plugin is not None:
        environ["PYTHONPATH"] = os.pathsep.join([str(plugin), environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "xlingbench", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300)


def test_a_plugin_task_and_sink_run_log_and_reach_the_board(tiny_model: Path, plugin: Path, tmp_path: Path) -> None:
    record = tmp_path / "recorded.jsonl"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    listed = _xlingbench(["tasks"], tmp_path, plugin, COLUMNS="300")
    assert "embedding_norms" in listed.stdout
    done = _xlingbench(["run", "-m", str(tiny_model), "-t", "embedding_norms", "-t", "script_separability",
                        "--set", "script_separability.min_tokens=2", "--set", "folds=2",
                        "--sink", "mlflow", "--sink", "recorder", "--tracking-uri", uri,
                        "--cache-dir", str(tmp_path / "cache")], tmp_path, plugin, RECORDER_FILE=str(record))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [line.get("task") for line in lines[:2]] == ["embedding_norms", "script_separability"]
    assert lines[2] == {"finished": str(tiny_model), "tasks": 2}
    assert all(len(line["fingerprint"]) == 16 for line in lines[:2])
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("xlingbench").experiment_id
    (run,) = client.search_runs([experiment], "tags.`xlingbench.task` = 'embedding_norms'")
    assert run.data.metrics["mean_norm"] == pytest.approx(lines[0]["headline"])
    assert "plots/norms_by_letter.svg" in [a.path for a in client.list_artifacts(run.info.run_id, "plots")]
    board = _xlingbench(["leaderboard", "--tracking-uri", uri, "--out", str(tmp_path / "site")], tmp_path, plugin)
    assert board.returncode == 0, board.stderr
    pages = "".join(p.read_text() for p in (tmp_path / "site").rglob("*.html"))
    assert "embedding_norms" in pages and "Plugin chart: norm by first letter" in pages


def test_evaluate_returns_typed_results_without_mlflow_and_the_json_sink_round_trips(tiny_model: Path, tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import json, sys
        import xlingbench
        from xlingbench.sinks import SinkSettings
        outcomes = xlingbench.evaluate([{str(tiny_model)!r}], ["script_separability", "neighbour_script_count"], ["json"],
                                       params={{"script_separability": {{"min_tokens": 2, "folds": 2, "labels": "script"}},
                                                "neighbour_script_count": {{"sample": 1.0, "neighbours": 3}}}},
                                       cache_dir={str(tmp_path / 'cache')!r},
                                       sink_settings=SinkSettings(results_dir={str(tmp_path / 'results')!r}))
        assert "mlflow" not in sys.modules, "evaluate imported mlflow"
        print(json.dumps({{o.task.name: [o.headline, o.refs["json"]] for o in outcomes}}))
        """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "XLINGBENCH_PROGRESS": "0"})
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["script_separability"][0] == 1.0  # two tight clusters in two scripts (special tokens unlabelled)
    path = Path(found["neighbour_script_count"][1])
    assert path.parent.parent.parent.parent == tmp_path / "results" and path.parent.name == "neighbour_script_count"
    document = json.loads(path.read_text())
    assert document["schema_version"] == 2 and document["task"]["higher_is_better"] is None
    assert path.stem == document["task_key"] and "task_key" not in document["result"]["info"]
    metadata = TaskMetadata(name="neighbour_script_count", description="", reference="", main_score="mean_count", version="1")
    again = from_document(document, metadata)
    assert again.headline == found["neighbour_script_count"][0]
    assert again.result.intervals["mean_count"][0] <= again.headline <= again.result.intervals["mean_count"][1]


@pytest.mark.parametrize(("args", "message"), [
    (["--dictionary", "muse", "-t", "calign"], "--dictionary is taken by none of the tasks of this run (calign)"),
    (["--languages", "en,de,fr", "-t", "calign"], "CALIGN takes exactly two languages"),
    (["--languages", "en", "-t", "colap"], "two or more different languages"),
    (["--labels", "unicode", "-t", "script_separability"], "is not one of paper, script"),
    (["--set", "calign.dictionary=/no/such/file", "-t", "calign"], "neither 'induced' nor an existing"),
    (["--set", "folds=1", "-t", "script_separability"], "folds=1 must be at least 2"),
    (["--set", "translation_in_neighbours.ks=1,x", "-t", "translation_in_neighbours"], "is not a valid int"),
    (["--device", "bogus"], "is not a device"),
    (["--dtype", "float8"], "float8"),
    (["--sink", "nosuch"], "unknown sink 'nosuch'"),
])
def test_bad_values_are_refused_before_anything_loads(args: list[str], message: str, tmp_path: Path, monkeypatch) -> None:
    from xlingbench.inputs import sources

    monkeypatch.setattr(sources, "open_source", lambda *a: pytest.fail("a model was opened"))
    result = runner.invoke(app, ["run", *args, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists()


def test_a_crash_is_one_line_exit_3_and_a_log_with_the_traceback(tmp_path: Path, monkeypatch) -> None:
    from xlingbench.harness import runner as runner_module

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setenv("XLINGBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runner_module, "run", crash)
    result = runner.invoke(app, ["run", "-t", "script_separability", "--tracking-uri", f"sqlite:///{tmp_path / 'db'}"])
    assert result.exit_code == 3 and "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("internal error: RuntimeError: boom.")
    (log,) = (tmp_path / "cache" / "logs").glob("crash-*.log")
    assert str(log) in line and "RuntimeError: boom" in log.read_text()
