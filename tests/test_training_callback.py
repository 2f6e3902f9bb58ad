"""XlingbenchCallback: evaluates each saved checkpoint, logs the headlines into the training run at
the save steps, and leaves training exactly as it would have been without it."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from tests.training_runs import train_tiny

SMALL = ["script_separability.min_tokens=50", "neighbour_script_count.sample=1.0"]
TASKS = ["script_separability", "neighbour_script_count"]


@pytest.fixture()
def pud(shared_data) -> Path:
    return shared_data / "pud"


@pytest.fixture()
def mlflow_env(monkeypatch, tracking_uri):
    """transformers' MLflow integration logging to this test's store, experiment 'training'."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "training")
    return tracking_uri


def training_runs(tracking_uri: str) -> list:
    """The runs transformers' MLflow integration opened (no xlingbench role), oldest first."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("training").experiment_id
    runs = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    return [r for r in runs if "xlingbench.role" not in r.data.tags]


def test_training_with_the_callback_ends_with_the_same_weights(pud, mlflow_env, tmp_path, monkeypatch):
    import mlflow
    import torch

    from xlingbench.training import XlingbenchCallback
    from xlingbench.training import callback as module

    real = module.evaluate_folder

    def reseeding(folder, evaluation):  # an evaluation that reseeds every generator (the tasks' own seeds)
        random.seed(7), np.random.seed(7), torch.manual_seed(7)
        return real(folder, evaluation)

    monkeypatch.setattr(module, "evaluate_folder", reseeding)
    plain = train_tiny(tmp_path / "plain", pud, steps=6, save_steps=3, report_to="mlflow")
    callback = XlingbenchCallback(TASKS, overrides=SMALL, cache_dir=tmp_path / "cache")
    watched = train_tiny(tmp_path / "watched", pud, steps=6, save_steps=3, report_to="mlflow", callbacks=(callback,))
    plain_state, watched_state = plain.state_dict(), watched.state_dict()
    assert plain_state.keys() == watched_state.keys()
    assert all(torch.equal(plain_state[k], watched_state[k]) for k in plain_state)

    first, second = training_runs(mlflow_env)
    assert not any(k.startswith("script_separability/") for k in first.data.metrics)
    client = mlflow.MlflowClient(mlflow_env)
    for key in ("script_separability/accuracy", "neighbour_script_count/mean_count"):
        assert [p.step for p in client.get_metric_history(second.info.run_id, key)] == [3, 6], key
    # the usual xlingbench runs, in the training run's experiment: one model run per save, one trajectory per task
    experiment = second.info.experiment_id
    models = client.search_runs([experiment], "tags.`xlingbench.role` = 'model'")
    assert sorted(int(m.data.tags["xlingbench.step"]) for m in models) == [3, 6]
    assert {m.data.tags["xlingbench.model"] for m in models} == {"watched"}
    for model in models:
        step = int(model.data.tags["xlingbench.step"])
        logged = {p.step: p.value for p in client.get_metric_history(second.info.run_id, "script_separability/accuracy")}
        assert model.data.metrics["script_separability/accuracy"] == logged[step]


def test_the_callback_puts_back_every_random_generator():
    import torch

    from xlingbench.training.callback import preserved_rng

    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    with preserved_rng():
        random.seed(9), np.random.seed(9), torch.manual_seed(9)
        torch.set_grad_enabled(False)
    assert torch.is_grad_enabled()
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_background_evaluation_logs_into_the_training_run(pud, mlflow_env, tmp_path):
    import mlflow

    from xlingbench.training import XlingbenchCallback

    callback = XlingbenchCallback(["script_separability"], overrides=SMALL[:1], cache_dir=tmp_path / "cache", background=True)
    train_tiny(tmp_path / "bg", pud, steps=4, save_steps=2, report_to="mlflow", callbacks=(callback,))
    assert callback.failures == []
    (run,) = training_runs(mlflow_env)
    history = mlflow.MlflowClient(mlflow_env).get_metric_history(run.info.run_id, "script_separability/accuracy")
    assert sorted(p.step for p in history) == [2, 4]


def test_every_picks_the_saves_to_evaluate_and_a_failed_evaluation_does_not_stop_training(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from xlingbench.core.errors import UserError
    from xlingbench.harness.grid import Failure, GridResult
    from xlingbench.training import XlingbenchCallback
    from xlingbench.training import callback as module

    evaluated = []

    def failing(folder, evaluation):
        evaluated.append(folder.name)
        error = UserError(f"{folder} has no tokenizer files.", "Save the tokenizer.")
        return GridResult(failed=[Failure(SimpleNamespace(), error.one_line().removeprefix("error: "), True, error)])

    monkeypatch.setattr(module, "evaluate_folder", failing)
    callback = XlingbenchCallback(["script_separability"], every=4, cache_dir=tmp_path / "cache")
    args = SimpleNamespace(output_dir=str(tmp_path / "out"))
    for step in (2, 4, 6, 8):
        callback.on_save(args, SimpleNamespace(global_step=step, is_world_process_zero=True), None)
    assert evaluated == ["checkpoint-4", "checkpoint-8"]
    assert [reason for _, reason in callback.failures] == [f"{tmp_path / 'out' / name} has no tokenizer files. Fix: Save the tokenizer."
                                                           for name in evaluated]
    assert capsys.readouterr().err.count("xlingbench: evaluating ") == 2
    with pytest.raises(ValueError, match="every=0"):
        XlingbenchCallback(every=0)


def test_a_misspelt_task_fails_before_training(tmp_path):
    from types import SimpleNamespace

    from xlingbench.core.errors import UserError
    from xlingbench.training import XlingbenchCallback

    with pytest.raises(UserError, match="no_such_task"):
        XlingbenchCallback(["no_such_task"]).on_train_begin(SimpleNamespace(output_dir=str(tmp_path)), None, None)
