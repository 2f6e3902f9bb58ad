"""``xlingbench watch``: a checkpoint written slowly, in pieces, is evaluated once, after it is complete."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.training_runs import TASK1, trained_run
from xlingbench.cli.main import app
from xlingbench.training import watch as watching

#: bytes per piece of the slowly written checkpoint, and the pause between pieces (well under --settle)
PIECE, PAUSE, SETTLE = 64 << 10, 0.2, 3.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Two checkpoints (steps 2 and 4) of a tiny model trained on PUD."""
    return trained_run(tmp_path_factory.mktemp("watch") / "trained", steps=4, save_steps=2)


def write_slowly(source: Path, target: Path, done: threading.Event) -> None:
    """Copy a checkpoint folder as a trainer writes one, once the watcher runs: the folder first, then
    each file in pieces with pauses."""
    time.sleep(1.0)
    target.mkdir()
    for path in sorted(source.iterdir(), key=lambda p: (p.name != "config.json", p.name)):
        data = path.read_bytes()
        with open(target / path.name, "wb") as handle:
            for start in range(0, max(len(data), 1), PIECE):
                handle.write(data[start : start + PIECE])
                handle.flush()
                time.sleep(PAUSE)
    done.set()


def test_a_checkpoint_written_in_pieces_is_evaluated_once_when_complete(trained, tracking_uri, tmp_path, monkeypatch):
    run = tmp_path / "watched-run"
    run.mkdir()
    shutil.copytree(trained / "checkpoint-2", run / "checkpoint-2")  # already there when watching starts
    written = threading.Event()
    evaluated: list[tuple[str, bool]] = []
    real = watching.evaluate_folder

    def spy(folder, evaluation, report):
        evaluated.append((folder.name, folder.name != "checkpoint-4" or written.is_set()))
        return real(folder, evaluation, report)

    monkeypatch.setattr(watching, "evaluate_folder", spy)
    writer = threading.Thread(target=write_slowly, args=(trained / "checkpoint-4", run / "checkpoint-4", written))
    writer.start()
    result = CliRunner().invoke(app, ["watch", str(run), *TASK1,
                                      "--interval", "0.1", "--settle", str(SETTLE), "--until-step", "4",
                                      "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path / "cache")])
    writer.join()
    assert result.exit_code == 0, result.output
    assert evaluated == [("checkpoint-2", True), ("checkpoint-4", True)]  # each once; the second after its last byte
    assert result.output.count("done watched-run ") == 2
    import mlflow

    from xlingbench.inputs.registry import resolve_model
    from xlingbench.inputs.sources import open_source

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("xlingbench").experiment_id
    models = {m.data.tags["xlingbench.step"]: m.data.tags["xlingbench.revision"]
              for m in client.search_runs([experiment], "tags.`xlingbench.role` = 'model'")}
    final = open_source(resolve_model(str(run / "checkpoint-4"))).revision
    assert models == {"2": open_source(resolve_model(str(run / "checkpoint-2"))).revision, "4": final}  # read whole


def test_a_restarted_watch_skips_what_the_store_holds(trained, tracking_uri, tmp_path):
    arguments = ["watch", str(trained), *TASK1, "--interval", "0.05",
                 "--settle", "0", "--until-step", "4", "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path / "cache")]
    first = CliRunner().invoke(app, arguments)
    assert first.exit_code == 0 and first.output.count("done trained ") == 2, first.output
    again = CliRunner().invoke(app, arguments)
    assert again.exit_code == 0 and "done " not in again.output, again.output
    assert again.output.count("already in the store") == 2


def test_watch_refuses_a_bad_task_before_waiting(tmp_path):
    result = CliRunner().invoke(app, ["watch", str(tmp_path), "-t", "no_such_task"])
    assert result.exit_code == 2 and "no_such_task" in result.output
    result = CliRunner().invoke(app, ["watch", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "is not a folder" in result.output
