"""A Trainer run's output folder as one trajectory: ``run -m OUT --checkpoints``, the board, ``compare OUT@STEP``."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.training_runs import TASK1, trained_run
from xlingbench.cli.main import app

STEPS = (2, 4, 6, 8, 10)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny model trained 10 steps on PUD, a checkpoint every 2 steps (5 checkpoints)."""
    return trained_run(tmp_path_factory.mktemp("training") / "tiny-run", steps=10, save_steps=2)


def run_folder(out: Path, tracking_uri: str, cache: Path, *extra: str):
    result = CliRunner().invoke(app, ["run", "-m", str(out), "--checkpoints", *TASK1,
                                      "--tracking-uri", tracking_uri, "--cache-dir", str(cache), *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_run_folder_is_one_trajectory_resumed_checkpoint_by_checkpoint(trained, tracking_uri, tmp_path):
    import mlflow

    from xlingbench.leaderboard.collect import collect
    from xlingbench.leaderboard.render import trajectory_points

    assert {p.name for p in trained.iterdir() if p.name.startswith("checkpoint-")} == {f"checkpoint-{s}" for s in STEPS}
    held_back = tmp_path / "checkpoint-10"
    shutil.move(trained / "checkpoint-10", held_back)  # four checkpoints now, the fifth added later
    try:
        first = run_folder(trained, tracking_uri, tmp_path / "cache")
        assert first.count("done tiny-run ") == 4
        client = mlflow.MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name("xlingbench").experiment_id
        models = client.search_runs([experiment], "tags.`xlingbench.role` = 'model'", order_by=["attributes.start_time ASC"])
        assert [m.data.tags["xlingbench.step"] for m in models] == ["2", "4", "6", "8"]  # run in step order
        assert {m.data.tags["xlingbench.model"] for m in models} == {"tiny-run"}
        assert all(m.data.tags["xlingbench.revision"].startswith("local-") for m in models)
        assert len({m.data.tags["xlingbench.revision"] for m in models}) == 4  # each checkpoint's own content fingerprint
        (trajectory,) = client.search_runs([experiment], "tags.`xlingbench.role` = 'trajectory'")
        history = client.get_metric_history(trajectory.info.run_id, "script_separability/accuracy")
        assert sorted(p.step for p in history) == [2, 4, 6, 8]
        board = collect(tracking_uri, ["xlingbench"])
        assert sorted(step for _, step in trajectory_points(board.rows, "script_separability")) == [2, 4, 6, 8]

        again = run_folder(trained, tracking_uri, tmp_path / "cache")
        assert "done " not in again and "skipped 4 task runs" in again
    finally:
        shutil.move(held_back, trained / "checkpoint-10")
    fifth = run_folder(trained, tracking_uri, tmp_path / "cache")
    assert fifth.count("done tiny-run ") == 1 and "@10 script_separability" in fifth and "skipped 4 task runs" in fifth

    compared = CliRunner().invoke(app, ["compare", "tiny-run@2", "tiny-run@10", "--tracking-uri", tracking_uri, "--json"])
    assert compared.exit_code in (0, 1), compared.output
    import json

    lines = json.loads(compared.output)["lines"]
    values = {(line["metric"], line["baseline"], line["candidate"]) for line in lines if line["metric"] == "accuracy"}
    by_step = {int(m.data.tags["xlingbench.step"]): m.data.metrics["script_separability/accuracy"]
               for m in mlflow.MlflowClient(tracking_uri).search_runs([experiment], "tags.`xlingbench.role` = 'model'")}
    assert values == {("accuracy", by_step[2], by_step[10])}
    missing = CliRunner().invoke(app, ["compare", "tiny-run@2", "tiny-run@99", "--tracking-uri", tracking_uri])
    assert missing.exit_code == 2 and "no finished run of model 'tiny-run' at step 99" in missing.output


def test_name_renames_the_trajectory_and_a_half_written_checkpoint_is_skipped(trained, tracking_uri, tmp_path):
    partial = trained / "checkpoint-12"
    partial.mkdir()
    try:
        shutil.copy(trained / "checkpoint-2" / "config.json", partial / "config.json")
        weights = (trained / "checkpoint-2" / "model.safetensors").read_bytes()
        (partial / "model.safetensors").write_bytes(weights[: len(weights) // 2])
        output = run_folder(trained, tracking_uri, tmp_path / "cache", "--name", "renamed")
    finally:
        shutil.rmtree(partial)
    assert output.count("done renamed ") == 5
    assert f"skipped {partial}: model.safetensors is partial" in output


def test_name_and_revision_are_refused_where_they_mean_nothing(trained, tracking_uri, tmp_path):
    saved = trained / "checkpoint-2"
    result = CliRunner().invoke(app, ["run", "-m", str(trained), "--checkpoints", "-r", "main", "-t", "script_separability",
                                      "--tracking-uri", tracking_uri])
    assert result.exit_code == 2 and "training run folder: its checkpoints are its revisions" in result.output
    result = CliRunner().invoke(app, ["run", "-m", str(saved), "--name", "x", "-t", "script_separability", "--tracking-uri", tracking_uri])
    assert result.exit_code == 2 and "--name x: it names a training run folder" in result.output
