"""Grids of model revisions x tasks: the Ray executor gives the local numbers, a killed grid
resumes where it stopped, a rerun skips what the store holds, and a broken unit fails alone.

Two tiny models x three checkpoints x two cheap tasks = 12 task runs in 6 units. One local Ray
cluster (2 CPUs) serves the whole module: the in-process runs use it as a notebook would, the
subprocess runs join it with --ray-address.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.tiny_models import checkpointed_model
from xlingbench.cli.main import app
from xlingbench.sinks.outbox import outbox_dir, pending

ROOT = Path(__file__).resolve().parents[1]
STEPS = (100, 200, 300)
MODELS = ("tiny/grid-a", "tiny/grid-b")
TASKS = ("script_separability", "neighbour_script_count")
UNITS, TASK_RUNS = len(MODELS) * len(STEPS), len(MODELS) * len(STEPS) * len(TASKS)


@pytest.fixture(scope="module")
def grid(tmp_path_factory, hub_cache) -> list[str]:
    """The grid's arguments: both models at every checkpoint, both tasks, small parameters."""
    for seed, repo in enumerate(MODELS):
        checkpointed_model(tmp_path_factory.mktemp(repo.replace("/", "-")), hub_cache, repo, STEPS, seed=seed)
    revisions = [arg for step in STEPS for arg in ("-r", f"step{step}@{step}")]
    models = [arg for repo in MODELS for arg in ("-m", repo)]
    tasks = [arg for task in TASKS for arg in ("-t", task)]
    return [*models, *revisions, *tasks, "--set", "min_tokens=30", "--set", "sample=1.0", "--set", "neighbours=5"]


@pytest.fixture(scope="module")
def cluster() -> str:
    """A local Ray cluster of 2 CPUs for the module (workers run this checkout's xlingbench); its address."""
    ray = pytest.importorskip("ray")
    import xlingbench

    temp = tempfile.mkdtemp(prefix="xr-", dir="/tmp")  # Ray's socket paths must stay short
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 << 20, _temp_dir=temp,
             log_to_driver=False, runtime_env={"py_modules": [xlingbench], "env_vars": {"XLINGBENCH_PROGRESS": "0"}})
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _run(args: list[str], store: Path, *extra: str) -> tuple[int, dict, str]:
    """``xlingbench run ARGS --json`` in this process: exit status, the JSON document, the output."""
    result = CliRunner().invoke(app, ["run", *args, "--tracking-uri", f"sqlite:///{store / 'mlflow.db'}",
                                      "--cache-dir", str(store / "cache"), "--json", *extra])
    document = json.loads(result.stdout[result.stdout.index("{"):]) if "{" in result.stdout else {}
    return result.exit_code, document, result.output


def _finished(store: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Task key -> (model, revision, task) of every FINISHED task run in the store, read with sqlite3
    (safe while another process writes; an absent store holds nothing)."""
    if not (store / "mlflow.db").exists():
        return {}
    with sqlite3.connect(store / "mlflow.db", timeout=30) as db:
        rows = db.execute("""SELECT k.value, m.value, r.value, t.value FROM runs
                             JOIN tags k ON k.run_uuid = runs.run_uuid AND k.key = 'xlingbench.task_key'
                             JOIN tags m ON m.run_uuid = runs.run_uuid AND m.key = 'xlingbench.model'
                             JOIN tags r ON r.run_uuid = runs.run_uuid AND r.key = 'xlingbench.revision'
                             JOIN tags t ON t.run_uuid = runs.run_uuid AND t.key = 'xlingbench.task'
                             WHERE runs.status = 'FINISHED'""").fetchall()
    found: dict[str, list[tuple[str, str, str]]] = {}
    for key, *names in rows:
        found.setdefault(key, []).append(tuple(names))
    return found


def _metrics(store: Path) -> dict[tuple[str, str, str], dict[str, float]]:
    """(model, revision, task) -> the metrics logged on its task run (timings left out: they vary)."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("xlingbench").experiment_id
    runs = client.search_runs([experiment], "tags.`xlingbench.role` = 'task'")
    table = {}
    for run in runs:
        tags = run.data.tags
        name = (tags["xlingbench.model"], tags["xlingbench.revision"], tags["xlingbench.task"])
        assert name not in table, f"two task runs for {name}"
        table[name] = {k: v for k, v in run.data.metrics.items() if not k.startswith("time_")}
    return table


def test_the_ray_grid_logs_exactly_what_a_local_run_logs(grid, cluster, tmp_path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    status, document, output = _run(grid, local)
    assert status == 0, output
    assert len(document["outcomes"]) == TASK_RUNS
    status, document, output = _run(grid, on_ray, "--executor", "ray")
    assert status == 0, output
    assert len(document["outcomes"]) == TASK_RUNS and not document["failed"]
    expected = _metrics(local)
    assert len(expected) == TASK_RUNS and all(expected.values())
    assert _metrics(on_ray) == expected  # same numbers, one MLflow run per task run
    assert sorted(_finished(on_ray)) == sorted(_finished(local))  # the same task keys, each once


def test_a_rerun_skips_what_the_store_holds_and_rerun_runs_it_again(grid, tmp_path):
    args = [*grid, "--sink", "mlflow", "--sink", "json", "--results-dir", str(tmp_path / "results")]
    status, first, _ = _run(args, tmp_path)
    assert status == 0
    status, again, output = _run(args, tmp_path)
    assert status == 0, output
    assert f"skipped {TASK_RUNS} task runs already in the store" in output
    assert all(o["skipped"] for o in again["outcomes"]) and len(again["outcomes"]) == TASK_RUNS
    # the skipped task runs name the run ids they already have, so `check --run @run.json` still works
    assert sorted(o["run_id"] for o in again["outcomes"]) == sorted(o["run_id"] for o in first["outcomes"])
    assert len(_finished(tmp_path)) == TASK_RUNS
    status, forced, _ = _run([*args, "--rerun"], tmp_path)
    assert status == 0 and not any(o.get("skipped") for o in forced["outcomes"])
    assert sorted(len(runs) for runs in _finished(tmp_path).values()) == [2] * TASK_RUNS


def test_a_task_run_missing_from_one_sink_runs_again(grid, tmp_path):
    """A task is skipped only when every sink holds it: a json sink added later gets every result."""
    status, _, _ = _run(grid, tmp_path)
    assert status == 0
    status, document, _ = _run([*grid, "--sink", "mlflow", "--sink", "json", "--results-dir", str(tmp_path / "out")], tmp_path)
    assert status == 0 and len([o for o in document["outcomes"] if not o.get("skipped")]) == TASK_RUNS
    assert len(list((tmp_path / "out").rglob("*.json"))) == TASK_RUNS


def test_a_killed_grid_resumes_with_only_the_missing_task_runs(grid, cluster, tmp_path):
    command = [sys.executable, "-m", "xlingbench", "run", *grid, "--executor", "ray", "--ray-address", cluster,
               "--workers", "1", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
               "--cache-dir", str(tmp_path / "cache"), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not _finished(tmp_path) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    before = _finished(tmp_path)
    assert 0 < len(before) < TASK_RUNS, "the driver was not killed partway"
    # a result the driver had kept but not yet logged when it died is sent by the next run's sink
    kept = {json.loads(path.read_text(encoding="utf-8"))["outcome"]["task_key"]
            for path in pending(outbox_dir(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "cache"))}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    outcomes = json.loads(done.stdout)["outcomes"]
    computed = {o["task_key"] for o in outcomes if not o.get("skipped")}
    after = _finished(tmp_path)
    assert computed == set(after) - set(before) - kept  # only the missing task runs ran
    assert {o["task_key"] for o in outcomes if o.get("skipped")} == set(before) | kept
    assert len(after) == TASK_RUNS and all(len(runs) == 1 for runs in after.values())


def test_a_broken_unit_fails_alone_and_is_named(grid, cluster, hub_cache, tmp_path):
    """A third model whose step-200 weights file is garbage: its other checkpoints and both other
    models finish; the one unit is named with its reason, and the exit status says user error (2)."""
    commits = checkpointed_model(tmp_path / "broken", hub_cache, "tiny/grid-broken", STEPS, seed=7)
    snapshot = hub_cache / "models--tiny--grid-broken" / "snapshots" / commits[200]
    (snapshot / "model.safetensors").write_bytes(b"not a safetensors file")
    status, document, output = _run([*grid, "-m", "tiny/grid-broken"], tmp_path, "--executor", "ray")
    assert status == 2, output  # a broken model folder is the user's to fix
    assert [(f["model"], f["revision"]) for f in document["failed"]] == [("tiny/grid-broken", "step200")]
    assert "failed tiny/grid-broken@step200: " in output
    finished = _finished(tmp_path)
    assert len(finished) == TASK_RUNS + 2 * len(TASKS)  # every unit but the broken one
    assert ("tiny/grid-broken", commits[200]) not in {names[0][:2] for names in finished.values()}


@pytest.mark.parametrize(("args", "message"), [
    (["--executor", "ray"], "--executor ray needs Ray, which is not installed. Fix: pip install 'xlingbench[ray]'"),
    (["--executor", "dask"], "--executor 'dask' is not an executor"),
    (["--executor", "ray", "--workers", "0"], "--workers 0: a grid needs at least one worker"),
])
def test_executor_mistakes_are_one_line_before_anything_opens(args, message, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: `import ray` raises ImportError
    result = CliRunner().invoke(app, ["run", "-t", "script_separability", *args,
                                      "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert message in line
    assert not (tmp_path / "mlflow.db").exists()
