"""Issue 18's store-side cases, catalogue style: NaN never passes a gate, result paths never escape
their folder. Each bad input is exit 2, one line naming the file or run and the key, no traceback."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xlingbench.cli.main import app
from xlingbench.core import identity
from xlingbench.core.task import ModelRevision, Outcome, TaskMetadata, TaskResult
from xlingbench.sinks import SinkSettings
from xlingbench.sinks.json_sink import JsonSink

META = TaskMetadata(name="script_separability", description="", reference="", main_score="accuracy", version="1")


def plant(results: Path, model: str, accuracy: float) -> str:
    """One result file of ``model`` under ``results``; its path."""
    revision = ModelRevision(model, f"org/{model}", "a" * 40)
    key = identity.task_key(model, revision.revision, None, META, {}, "float32", "cpu")
    outcome = Outcome(revision, META, TaskResult("script_separability", {}, {"accuracy": accuracy}), 1.0, 2.0, "fp", task_key=key)
    return JsonSink(SinkSettings(results_dir=results)).write(outcome)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.mark.parametrize("text", ['{"script_separability": {"accuracy": NaN}}',
                                  '{"script_separability": {"accuracy": {"value": 0.9, "tolerance": Infinity}}}',
                                  '{"script_separability": {"accuracy": {"value": 0.9, "low": NaN, "high": 1.0}}}'])
def test_an_expect_file_with_nan_or_infinity_is_refused(tmp_path: Path, text: str) -> None:
    plant(tmp_path / "results", "m", 0.9)
    expect = tmp_path / "expect.json"
    expect.write_text(text)
    code, output = invoke("check", "--expect", str(expect), "--run", "model=m", "--results-dir", str(tmp_path / "results"))
    assert code == 2 and output.startswith(f"error: expect file {expect}: script_separability.accuracy is ")
    assert len(output.strip().splitlines()) == 1 and "Traceback" not in output


@pytest.mark.parametrize("tolerance", ["accuracy=nan", "accuracy=inf", "accuracy=-1"])
def test_a_tolerance_that_is_not_a_finite_number_is_refused(tmp_path: Path, tolerance: str) -> None:
    plant(tmp_path / "results", "m", 0.9)
    code, output = invoke("compare", "model=m", "model=m", "--tolerance", tolerance, "--results-dir", str(tmp_path / "results"))
    assert code == 2 and output.startswith(f"error: bad --tolerance '{tolerance}'") and len(output.strip().splitlines()) == 1


def test_a_baseline_that_logged_nan_cannot_pass_a_gate(tmp_path: Path) -> None:
    results = tmp_path / "results"
    plant(results, "base", math.nan)
    plant(results, "cand", 0.1)
    code, output = invoke("compare", "model=base", "model=cand", "--results-dir", str(results))
    assert code == 2 and "accuracy is nan, which no gate can compare with" in output and len(output.strip().splitlines()) == 1


@pytest.mark.parametrize("model", ["..", ".", "../../outside", "/abs/path", ".hidden"])
def test_a_result_path_never_leaves_its_folder(tmp_path: Path, model: str) -> None:
    results = tmp_path / "deep" / "results"
    path = Path(plant(results, model, 0.5))
    assert path.resolve().is_relative_to(results.resolve()) and json.loads(path.read_text())["model"]["name"] == model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep"] and sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["results"]


def test_a_run_where_every_model_fails_leaves_no_store(tmp_path: Path) -> None:
    """A model folder that cannot load fails its revision (exit 2, one line); nothing was logged, so
    the SQLite store the run would have created is not left behind empty."""
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    store = tmp_path / "mlflow.db"
    code, output = invoke("run", "-m", str(broken), "-t", "script_separability", "--tracking-uri", f"sqlite:///{store}",
                          "--cache-dir", str(tmp_path / "cache"))
    assert code == 2 and "failed" in output and "Traceback" not in output, output
    assert not store.exists() and not Path(f"{store}.lock").exists()


def test_a_web_page_answering_as_the_tracking_server_is_a_user_error(tmp_path: Path) -> None:
    """A server that answers 200 with an HTML page is named as not MLflow (exit 2), not an internal error."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server protocol)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>Welcome</body></html>")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code, output = invoke("leaderboard", "--tracking-uri", f"http://127.0.0.1:{server.server_port}",
                              "--format", "markdown", "--out", "-")
    finally:
        server.shutdown()
    assert code == 2 and "answers, but not as an MLflow tracking server" in output and "Traceback" not in output, output
    assert len(output.strip().splitlines()) == 1
