"""Plant runs of the xlingbench layout into an MLflow store, through the xlingbench's own Tracker.

Why through the Tracker: the leaderboard and the gate read what the Tracker writes, so a
change of layout on either side fails these tests instead of passing against a hand copy.
Shared by tests/test_leaderboard.py, test_gating.py, test_browser.py, test_tracking_server.py
and benchmarks/bench_leaderboard.py.
"""
from __future__ import annotations

from xlingbench.sinks.mlflow_sink import Tracker
from xlingbench.core.task import TaskMetadata, TaskResult

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
                        version="1", needs="embeddings", higher_is_better=higher_is_better)


def model_tags(model: str, revision: str, step: int | None = None, family: str = "test-family", size: str = "270M") -> dict[str, str]:
    """The parent-run tags of one model revision."""
    tags = {"xlingbench.model": model, "xlingbench.model_id": f"org/{model}", "xlingbench.revision": revision,
            "xlingbench.family": family, "xlingbench.arch": "encoder", "xlingbench.size": size,
            "xlingbench.licence": "mit"}
    if step is not None:
        tags["xlingbench.step"] = str(step)
    return tags


def plant(tracker: Tracker, tags: dict[str, str], results: list[tuple[TaskResult, TaskMetadata]]) -> tuple[str, dict[str, str]]:
    """One parent run with one task run per result; returns (parent id, task -> task run id)."""
    with tracker.model_run(tags, {"device": "cpu", "dtype": "float32"}) as parent:
        children = {meta.name: tracker.log_task(result, meta, tags) for result, meta in results}
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
    """``count`` copies of a Tracker-planted model (parent + task runs), renamed ``clone-<i>``.

    Hundreds of runs through the Tracker take minutes (it logs artifacts); copying the tags
    and metrics of runs the Tracker wrote keeps its layout at a fraction of the cost.
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
