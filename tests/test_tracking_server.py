"""A real ``mlflow server`` (SQLite backend, local artifacts) logged to and read back over HTTP."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from xlingbench.leaderboard.collect import collect
from xlingbench.leaderboard.render import render_markdown, write_site
from tests.mlflow_plant import full_results, model_revision, open_sink, plant

START_TIMEOUT_S = 120


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, deadline: float) -> None:
    """Poll /health until it answers 200, the server dies, or the deadline passes."""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {url} not healthy after {START_TIMEOUT_S}s")


def start_server(root: Path, port: int) -> subprocess.Popen:
    """``mlflow server`` on 127.0.0.1:``port`` over the store in ``root``, once healthy; its log is ``root/server.log``."""
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")]
    with open(root / "server.log", "ab") as log:  # the child keeps its own copy of the descriptor
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, time.monotonic() + START_TIMEOUT_S)
    except (RuntimeError, TimeoutError):
        stop_server(server)
        raise
    return server


def stop_server(server: subprocess.Popen, signum: int = 15) -> None:
    """Stop the server's process group (gunicorn/uvicorn workers too) with ``signum``; kill it if it will not stop."""
    os.killpg(server.pid, signum)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, 9)
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on 127.0.0.1:<free port>; always terminated, killed if it will not stop."""
    port = free_port()
    server = start_server(tmp_path_factory.mktemp("server"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def planted(server_url: str) -> str:
    """Two model revisions logged over HTTP through the MLflow sink."""
    tracker = open_sink(server_url)
    plant(tracker, model_revision("xlm-roberta-xl", "a" * 40), full_results(0.9))
    plant(tracker, model_revision("mt5-xl", "b" * 40), full_results(0.8))
    return server_url


def test_leaderboard_from_a_tracking_server(planted: str, tmp_path: Path) -> None:
    board = collect(planted)
    assert {row.model for row in board.rows} == {"xlm-roberta-xl", "mt5-xl"}
    row = board.rows[0]
    assert row.url == f"{planted}/#/experiments/{row.experiment_id}/runs/{row.run_id}?workflowType=machine_learning"
    index = write_site(board, tmp_path / "site").read_text()
    assert f'href="{planted}/#/experiments/' in index
    detail = next((tmp_path / "site" / "models").glob("mt5-xl-*.html")).read_text()
    assert "Distinct categories among a token and its neighbours" in detail  # the table artifact, served over HTTP
    assert "CALIGN by layer" in detail  # a metric history, over HTTP


def test_tracking_uri_env_var_is_honoured(planted: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", planted)
    board = collect()
    assert board.tracking_uri == planted
    assert "| mt5-xl |" in render_markdown(board)
