"""Lose nothing, say clearly what went wrong: output folders, unfinished runs, interruptions, a dying server.

Each test plants the situation a user met (a project folder as ``--out``, a run left RUNNING by a
killed process, Ctrl-C, a tracking server that dies mid-run) and checks the exit status, the one
line on stderr, and that no file or result was lost.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from tests.mlflow_plant import full_results, model_revision, open_sink, plant
from tests.test_cli import planted  # noqa: F401  (the module-scoped tiny model with planted scripts)
from tests.test_cli_output import TASKS_1_2
from tests.test_tracking_server import free_port, start_server, stop_server
from xlingbench.cli.main import app
from xlingbench.cli.policy import EXIT_INTERRUPTED, EXIT_RESULTS_KEPT
from xlingbench.core.outputs import MARKER
from xlingbench.core.task import Outcome
from xlingbench.leaderboard.collect import collect
from xlingbench.sinks.json_sink import to_document
from xlingbench.sinks.mlflow_sink import TAG
from xlingbench.sinks.outbox import HOST, outbox_dir, pending

ROOT = Path(__file__).resolve().parents[1]
#: a driver that runs the CLI with the runner's second task call paused (until FLAGS/go) or interrupted by SIGTERM
DRIVER = """
import os, signal, sys, time
from pathlib import Path
import xlingbench.harness.unit as runner
from xlingbench.cli.main import app

flags, action = Path(sys.argv[1]), sys.argv[2]
real, calls = runner.run_task, []

def second_task_waits(task, inputs, params):
    calls.append(task)
    if len(calls) == 2 and action == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    if len(calls) == 2 and action == "pause":
        (flags / "ready").touch()
        while not (flags / "go").exists():
            time.sleep(0.1)
    return real(task, inputs, params)

runner.run_task = second_task_waits
app(sys.argv[3:], prog_name="xlingbench")
"""


def invoke(*args: str) -> tuple[int, str]:
    """The CLI in-process: exit status and everything it printed."""
    outcome = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return outcome.exit_code, outcome.output


def one_line(output: str) -> str:
    """The output, which must be exactly one line without a traceback."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def runs(uri: str, query: str = "") -> list:
    """Every run of the xlingbench experiment matching ``query``, whatever its status."""
    client = mlflow.MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name("xlingbench").experiment_id], query, max_results=1000)


def dead_pid() -> int:
    """The id of a process that has just exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --------------------------------------------------------------------------- output folders


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store with two finished model revisions."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    sink = open_sink(uri)
    plant(sink, model_revision("xlm-roberta-xl", "a" * 40), full_results(0.9))
    plant(open_sink(uri, "other"), model_revision("mt5-xl", "b" * 40), full_results(0.8))
    return uri


def test_a_project_folder_is_refused_and_nothing_is_deleted(store: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "weights.bin").write_bytes(b"mine")
    (project / "notes.md").write_text("mine")
    for fmt in ("html", "markdown"):
        code, output = invoke("leaderboard", "--tracking-uri", store, "--out", str(project), "--format", fmt)
        assert code == 2 and str(project) in one_line(output) and "empty" in output
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*")) == ["models", "models/weights.bin", "notes.md"]


def test_an_existing_file_as_out_is_one_line(store: str, tmp_path: Path) -> None:
    (tmp_path / "site").write_text("a file")
    code, output = invoke("leaderboard", "--tracking-uri", store, "--out", str(tmp_path / "site"))
    assert code == 2 and "is a file" in one_line(output)
    assert (tmp_path / "site").read_text() == "a file"


def test_the_leaderboard_replaces_only_its_own_pages(store: str, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert invoke("leaderboard", "--tracking-uri", store, "--out", str(site), "-e", "xlingbench", "-e", "other")[0] == 0
    pages = {p.name for p in (site / "models").iterdir()}
    assert len(pages) == 2 and (site / MARKER).is_file()
    (site / "models" / "mine.txt").write_text("added by hand")
    assert invoke("leaderboard", "--tracking-uri", store, "--out", str(site), "-f", "markdown")[0] == 0
    assert invoke("leaderboard", "--tracking-uri", store, "--out", str(site))[0] == 0  # only xlingbench: mt5-xl's page goes
    remaining = {p.name for p in (site / "models").iterdir()}
    assert remaining == {"mine.txt", *(name for name in pages if name.startswith("xlm-roberta-xl"))}
    assert (site / "leaderboard.md").is_file() and "xlm-roberta-xl" in (site / "index.html").read_text()


def test_the_json_sink_refuses_a_folder_of_the_users(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "thesis.tex").write_text("mine")
    code, output = invoke("run", "-t", "script_separability", "--sink", "json", "--results-dir", str(tmp_path / "results"))
    assert code == 2 and str(tmp_path / "results") in one_line(output)
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["thesis.tex"]


def test_write_expect_into_a_missing_folder_creates_it(store: str, tmp_path: Path) -> None:
    parent = runs(store, f"tags.`{TAG}role` = 'model'")[0].info.run_id
    target = tmp_path / "new" / "folder" / "expected.json"
    code, output = invoke("check", "--write-expect", "--expect", str(target), "--run", parent, "--tracking-uri", store)
    assert code == 0, output
    assert json.loads(target.read_text())["script_separability"]["accuracy"]["value"] == 0.9


# --------------------------------------------------------------------------- unfinished runs


def plant_running_task_run(uri: str, model: str) -> tuple[str, str]:
    """A task run of ``model`` left RUNNING (its process killed mid-write) under a RUNNING parent,
    with a headline far above every finished run's; returns (parent id, task run id)."""
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("xlingbench").experiment_id
    template = runs(uri, f"tags.`{TAG}task` = 'script_separability'")[0]
    tags = {k: v for k, v in template.data.tags.items() if not k.startswith("mlflow.")}
    parent = client.create_run(experiment, tags={**tags, f"{TAG}role": "model", f"{TAG}model": model}).info.run_id
    child = client.create_run(experiment, tags={**tags, f"{TAG}model": model, "mlflow.parentRunId": parent})
    client.log_metric(child.info.run_id, "accuracy", 0.999)
    return parent, child.info.run_id


def test_board_compare_and_check_ignore_unfinished_runs(store: str, tmp_path: Path) -> None:
    parent, child = plant_running_task_run(store, "half-run")
    board = collect(store)
    assert {row.model for row in board.rows} == {"xlm-roberta-xl"} and 0.999 not in {row.value for row in board.rows}
    finished = runs(store, f"tags.`{TAG}model` = 'xlm-roberta-xl' and tags.`{TAG}role` = 'model'")[0].info.run_id
    for ref in (parent, child):
        code, output = invoke("compare", finished, ref, "--tracking-uri", store)
        assert code == 2 and f"run {ref} is RUNNING" in one_line(output)
    expect = tmp_path / "expect.json"
    expect.write_text(json.dumps({"script_separability": {"accuracy": 0.9}}))
    code, output = invoke("check", "--expect", str(expect), "--run", child, "--tracking-uri", store)
    assert code == 2 and "is RUNNING" in one_line(output)
    code, output = invoke("check", "--expect", str(expect), "--run", "xlingbench:model=half-run", "--tracking-uri", store)
    assert code == 2 and "no run matches" in one_line(output)  # the selector finds no finished run
    for run_id in (parent, child):
        mlflow.MlflowClient(store).set_terminated(run_id, "KILLED")


def test_runs_of_a_dead_process_on_this_host_are_marked_killed(tracking_uri: str) -> None:
    sink = open_sink(tracking_uri)
    client = sink.client
    owners = {"dead": (HOST, dead_pid()), "alive": (HOST, os.getpid()), "elsewhere": ("another-host", dead_pid())}
    planted_ids = {name: client.create_run(sink.experiment_id, tags={f"{TAG}host": host, f"{TAG}pid": str(pid)}).info.run_id
                   for name, (host, pid) in owners.items()}
    open_sink(tracking_uri)
    status = {name: client.get_run(run_id).info.status for name, run_id in planted_ids.items()}
    assert status == {"dead": "KILLED", "alive": "RUNNING", "elsewhere": "RUNNING"}


@pytest.mark.parametrize(("reason", "status"), [("KeyboardInterrupt", "KILLED"), ("interrupted by SIGTERM", "KILLED"),
                                                ("ValueError: bad matrix", "FAILED")])
def test_abort_closes_the_open_parent_runs(tracking_uri: str, reason: str, status: str) -> None:
    sink = open_sink(tracking_uri)
    (result, meta), (other, other_meta) = full_results(0.7)[:2]
    now = time.time()
    first = sink.write(Outcome(model_revision("m", "c" * 40), meta, result, now, now + 1, "f1"))
    second = sink.write(Outcome(model_revision("n", "d" * 40), other_meta, other, now, now + 1, "f2"))
    parents = {sink.client.get_run(run_id).data.tags["mlflow.parentRunId"] for run_id in (first, second)}
    sink.abort(reason)
    for parent in parents:
        run = sink.client.get_run(parent)
        assert run.info.status == status and run.data.tags[f"{TAG}abort_reason"] == reason
    assert {sink.client.get_run(run_id).info.status for run_id in (first, second)} == {"FINISHED"}  # the results stand


def test_the_outbox_is_sent_once_on_start_except_what_a_live_process_keeps(tracking_uri: str) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (result, meta), (other, other_meta) = full_results(0.6)[:2]
        now = time.time()
        folder = outbox_dir(tracking_uri)
        folder.mkdir(parents=True, exist_ok=True)
        for name, pid, (res, md) in (("1-dead", dead_pid(), (result, meta)), ("2-live", sleeper.pid, (other, other_meta))):
            outcome = Outcome(model_revision("kept", "e" * 40), md, res, now, now + 1, f"fp-{name}")
            (folder / f"{name}.json").write_text(json.dumps({"host": HOST, "pid": pid, "outcome": to_document(outcome)}))
        open_sink(tracking_uri)
        open_sink(tracking_uri)  # a second start sends nothing twice
    finally:
        sleeper.kill()
        sleeper.wait()
    sent = runs(tracking_uri, f"tags.`{TAG}role` = 'task'")
    assert [(r.data.tags[f"{TAG}task"], r.info.status, r.data.metrics["accuracy"]) for r in sent] == [("script_separability", "FINISHED", 0.6)]
    parent = mlflow.MlflowClient(tracking_uri).get_run(sent[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["script_separability/accuracy"] == 0.6
    assert [p.name for p in pending(folder)] == ["2-live.json"]  # the live process's own to send
    (folder / "2-live.json").unlink()


# --------------------------------------------------------------------------- tracking URIs


@pytest.mark.parametrize("uri", ["sqlite://", "sqlite:///:memory:", "foo://bar"])
@pytest.mark.parametrize("command", ["run", "leaderboard"])
def test_stores_that_lose_results_or_do_not_exist_are_refused(uri: str, command: str, tmp_path: Path) -> None:
    started = time.monotonic()
    args = ["-t", "script_separability"] if command == "run" else ["--out", str(tmp_path / "site")]
    code, output = invoke(command, *args, "--tracking-uri", uri)
    assert code == 2 and uri in one_line(output)
    assert time.monotonic() - started < 30


def test_an_unwritable_store_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    code, output = invoke("run", "-t", "script_separability", "--tracking-uri", f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}")
    assert code == 2 and "cannot write the MLflow store" in one_line(output)


def test_a_read_only_store_folder_is_one_line(tmp_path: Path, unprivileged: dict) -> None:
    """The CLI in a subprocess that honours mode bits even as root (CI runs as root; see ``unprivileged``)."""
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    done = subprocess.run(
        [sys.executable, "-m", "xlingbench", "run", "-t", "script_separability", "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"],
        capture_output=True, text=True, check=False, timeout=600, cwd=tmp_path, env=environment(tmp_path / "cache"), **unprivileged)
    assert done.returncode == 2 and "cannot write the MLflow store" in one_line(done.stdout + done.stderr)


# --------------------------------------------------------------------------- interruptions and a dying server


def cli_args(uri: str, cache: Path) -> list[str]:
    """The run of tasks 1-2 on the planted tiny model."""
    return ["run", "-m", "tiny/planted", *TASKS_1_2, "--tracking-uri", uri, "--cache-dir", str(cache)]


def environment(cache: Path) -> dict[str, str]:
    """This checkout's xlingbench, and the outbox under ``cache``."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "XLINGBENCH_CACHE": str(cache), "COLUMNS": "200"}


def cli(args: list[str], cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m xlingbench ARGS`` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "xlingbench", *args], capture_output=True, text=True, check=False,
                          env=environment(cache), cwd=cwd, timeout=600)


def driver(tmp_path: Path, action: str, args: list[str], cache: Path) -> subprocess.Popen:
    """:data:`DRIVER` in a subprocess: the CLI with ``args``, its second task paused or interrupted."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path), action, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment(cache), cwd=tmp_path)


def test_sigterm_says_what_was_kept_and_a_rerun_resumes(planted, tracking_uri: str, tmp_path: Path) -> None:  # noqa: F811
    cache = tmp_path / "cache"
    stopped = driver(tmp_path, "sigterm", cli_args(tracking_uri, cache), cache)
    _, err = stopped.communicate(timeout=600)
    assert stopped.returncode == EXIT_INTERRUPTED, err
    last = err.strip().splitlines()[-1]
    assert last == "interrupted: 1 results were logged; rerun the same command to resume from the cache"
    assert "Traceback" not in err
    again = cli(cli_args(tracking_uri, cache), cache, tmp_path)
    assert again.returncode == 0, again.stderr
    assert not runs(tracking_uri, "attributes.status = 'RUNNING'")
    assert len(runs(tracking_uri, f"tags.`{TAG}role` = 'model' and attributes.status = 'KILLED'")) == 1
    separability = [r.data.metrics for r in runs(tracking_uri, f"tags.`{TAG}task` = 'script_separability'")]
    headlines = {m["accuracy"] for m in separability}
    assert len(headlines) == 1, headlines  # the rerun's number is the interrupted run's


def test_a_server_that_dies_mid_run_loses_nothing(planted, tmp_path: Path) -> None:  # noqa: F811
    root, cache, port = tmp_path / "server", tmp_path / "cache", free_port()
    root.mkdir()
    url = f"http://127.0.0.1:{port}"
    server = start_server(root, port)
    try:
        run = driver(tmp_path, "pause", [*cli_args(url, cache), "--json"], cache)
        deadline = time.monotonic() + 600
        while not (tmp_path / "ready").exists():
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.2)
        stop_server(server, 9)  # the first task's run is logged; the server dies before the second's
        (tmp_path / "go").touch()
        out, err = run.communicate(timeout=300)
    finally:
        if server.poll() is None:
            stop_server(server)
    assert run.returncode == EXIT_RESULTS_KEPT, err
    outcomes = {o["task"]: o for o in json.loads(out)["outcomes"]}
    assert outcomes["script_separability"]["run_id"] and outcomes["neighbour_script_count"]["run_id"] is None  # run went on
    folder = cache / "outbox" / outbox_dir(url).name
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and f"1 results are kept in {folder}" in last and f"next run to {url}" in last
    kept = pending(folder)
    assert [json.loads(p.read_text())["outcome"]["task"]["name"] for p in kept] == ["neighbour_script_count"]

    server = start_server(root, port)
    try:
        first_task_only = ["run", "-m", "tiny/planted", "-t", "script_separability", "--set", "script_separability.min_tokens=20",
                           "--tracking-uri", url, "--cache-dir", str(cache)]
        again = cli(first_task_only, cache, tmp_path)
        assert again.returncode == 0, again.stderr
        counted = runs(url, f"tags.`{TAG}task` = 'neighbour_script_count'")
        running = runs(url, "attributes.status = 'RUNNING'")
    finally:
        stop_server(server)
    assert [r.info.status for r in counted] == ["FINISHED"]  # the kept result, sent once
    assert counted[0].data.metrics["mean_count"] == pytest.approx(outcomes["neighbour_script_count"]["value"])
    assert not running and not pending(folder)
