"""Training checkpoints: three revisions of one tiny model give one metric-vs-step series per task."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from xlingbench.cli.main import app
from xlingbench.inputs.registry import ModelSpec
from xlingbench.harness.runner import plan_revisions
from tests.tiny_models import checkpointed_model

STEPS = (100, 200, 300)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, hub_cache) -> dict[int, str]:
    """One repo, three branches: a script offset that grows with training, so the curve rises."""
    return checkpointed_model(tmp_path_factory.mktemp("checkpoints"), hub_cache, "tiny/checkpointed", STEPS)


def test_three_revisions_give_one_series_per_task(checkpoints, tracking_uri, tmp_path):
    revisions = [arg for step in STEPS for arg in ("-r", f"step{step}@{step}")]
    result = CliRunner().invoke(app, [
        "run", "-m", "tiny/checkpointed", *revisions, "-t", "script_separability", "-t", "neighbour_script_count",
        "--set", "min_tokens=30", "--set", "sample=1.0", "--tracking-uri", tracking_uri,
        "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("xlingbench").experiment_id
    trajectories = client.search_runs([experiment], "tags.`xlingbench.role` = 'trajectory'")
    # one trajectory run per task configuration, each point at its training step
    assert len(trajectories) == 2 and {t.data.tags["xlingbench.model"] for t in trajectories} == {"tiny/checkpointed"}
    by_key = {key: t.info.run_id for t in trajectories for key in t.data.metrics}
    for key in ("script_separability/accuracy", "neighbour_script_count/mean_count"):
        history = client.get_metric_history(by_key[key], key)
        assert sorted(point.step for point in history) == list(STEPS), key
    accuracy = {p.step: p.value for p in client.get_metric_history(by_key["script_separability/accuracy"], "script_separability/accuracy")}
    assert accuracy[100] <= accuracy[300]
    models = client.search_runs([experiment], "tags.`xlingbench.role` = 'model'")
    assert sorted(m.data.tags["xlingbench.revision"] for m in models) == sorted(checkpoints.values())
    assert sorted(int(m.data.tags["xlingbench.step"]) for m in models) == list(STEPS)


def test_revision_parsing():
    spec = ModelSpec(name="m", hub_id="o/m")
    assert plan_revisions(spec, [], False) == [(None, None)]
    assert plan_revisions(spec, ["main", "step5@5"], False) == [("main", None), ("step5", 5)]
    from xlingbench.core.errors import UserError

    with pytest.raises(UserError, match="step after @ must be a whole number"):
        plan_revisions(spec, ["x@y"], False)
    with pytest.raises(UserError, match="lists no checkpoints"):
        plan_revisions(spec, [], True)


def test_trajectory_runs_are_found_for_names_with_quotes(tracking_uri):
    from tests.mlflow_plant import metadata, model_revision, open_sink, plant, result

    sink = open_sink(tracking_uri)
    for step in (1, 2):
        plant(sink, model_revision("o'brien/model", f"{step:040d}", step=step), [(result("colap", {"colap_max": float(step)}), metadata("colap"))])
    client = sink.client
    runs = client.search_runs([sink.experiment_id], "tags.`xlingbench.role` = 'trajectory'")
    assert len(runs) == 1
    assert [p.step for p in client.get_metric_history(runs[0].info.run_id, "colap/colap_max")] == [1, 2]
