"""Plant runs of the xlingbench layout into an MLflow store, through xlingbench's own MLflow sink.

Why through the sink: the leaderboard and the gate read what the sink writes, so a
change of layout on either side fails these tests instead of passing against a hand copy.
Shared by tests/test_leaderboard.py, test_gating.py, test_browser.py, test_tracking_server.py
and benchmarks/bench_leaderboard.py.
"""
from __future__ import annotations

import time

from xlingbench.core.task import ModelRevision, Outcome, TaskMetadata, TaskResult
from xlingbench.sinks import SinkSettings
from xlingbench.sinks.mlflow_sink import MlflowSink

MAIN_SCORES = {
    "script_separability": "accuracy",
    "neighbour_script_count": "mean_count",
    "translation_in_neighbours": "hit_at_10",
    "calign": "calign_max",
    "colap": "colap_max",
}


def metadata(task: str, higher_is_better: bool = True) -> TaskMetadata:
    """Metadata of a planted task: the real task's name and headline key."""
    return TaskMetadata(name=task, description="planted", reference="test", main_score=MAIN_SCORES.get(task, "score"),
                        version="1", higher_is_better=higher_is_better)


def open_sink(uri: str, experiment: str = "xlingbench") -> MlflowSink:
    """The MLflow sink on ``uri``, as the runner opens it."""
    return MlflowSink(SinkSettings(tracking_uri=uri, experiment=experiment))


def model_revision(model: str, revision: str, step: int | None = None, family: str = "test-family", size: str = "270M") -> ModelRevision:
    """One planted model revision."""
    return ModelRevision(name=model, model_id=f"org/{model}", revision=revision, step=step, family=family, arch="encoder",
                         size=size, licence="mit", provenance={"device": "cpu", "dtype": "float32"})


def plant(sink: MlflowSink, model: ModelRevision, results: list[tuple[TaskResult, TaskMetadata]],
          fingerprint: str = "planted") -> tuple[str, dict[str, str]]:
    """One parent run with one task run per result; returns (parent id, task -> task run id)."""
    now = time.time()
    outcomes = [Outcome(model, meta, result, now, now + 1, f"{fingerprint}-{meta.name}") for result, meta in results]
    children = {o.task.name: sink.write(o) for o in outcomes}
    sink.finish_model(model, outcomes)
    parent = sink.client.get_run(next(iter(children.values()))).data.tags["mlflow.parentRunId"]
    return parent, children


def result(task: str, metrics: dict[str, float], **extra) -> TaskResult:
    """A TaskResult with only what the leaderboard reads."""
    return TaskResult(task=task, params={"seed": 150}, metrics=metrics, **extra)


def full_results(score: float) -> list[tuple[TaskResult, TaskMetadata]]:
    """A model's five task results whose headlines derive from ``score``: every chart has data."""
    return [
        (result("script_separability", {"accuracy": score, "accuracy/LATIN": score + 0.01, "accuracy/CYRILLIC": score - 0.01}),
         metadata("script_separability")),
        (result("neighbour_script_count", {"mean_count": 1 + score, "std_count": 0.5},
                intervals={"mean_count": (0.9 + score, 1.1 + score)},
                tables={"distribution": [{"categories": 1, "queries": 30, "share": 0.6}, {"categories": 2, "queries": 20, "share": 0.4}]}),
         metadata("neighbour_script_count", higher_is_better=False)),
        (result("translation_in_neighbours", {"hit_at_10": score / 2, "hit_at_1/en-de": score / 4, "hit_at_10/en-de": score / 2}),
         metadata("translation_in_neighbours")),
        (result("calign", {"calign_max": 100 * score}, step_metrics={"calign": [(0, 10.0), (1, 100 * score), (2, 50.0)]}),
         metadata("calign")),
    ]


def clone_models(uri: str, parent_id: str, count: int, experiment: str = "xlingbench") -> None:
    """``count`` copies of a sink-planted model (parent + task runs), renamed ``clone-<i>``.

    Hundreds of runs through the sink take minutes (it logs artifacts); copying the tags
    and metrics of runs the sink wrote keeps its layout at a fraction of the cost.
    """
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment).experiment_id
    children = client.search_runs([exp], f"tags.\"mlflow.parentRunId\" = '{parent_id}'")
    templates = [client.get_run(parent_id), *children]
    for i in range(count):
        new_parent = ""
        for template in templates:
            tags = {k: v for k, v in template.data.tags.items() if not k.startswith("mlflow.")}
            tags.update({"xlingbench.model": f"clone-{i}", "xlingbench.revision": f"{i:08d}"})
            if new_parent:
                tags["mlflow.parentRunId"] = new_parent
            run = client.create_run(exp, tags=tags, run_name=template.info.run_name)
            metrics = [Metric(k, v + i / 1000, 0, 0) for k, v in template.data.metrics.items()]
            client.log_batch(run.info.run_id, metrics=metrics)
            new_parent = new_parent or run.info.run_id
