"""Plant runs of the xlingbench layout into an MLflow store, through xlingbench's own MLflow sink.

Why through the sink: the leaderboard and the gate read what the sink writes, so a
change of layout on either side fails these tests instead of passing against a hand copy.
Shared by tests/test_leaderboard.py, test_gating.py, test_browser.py, test_tracking_server.py
and benchmarks/bench_leaderboard.py.

:data:`PLUGIN` is a task the leaderboard has never heard of, as a third-party package would
ship it; :func:`install_plugin` registers it under the ``xlingbench.tasks`` entry point group
the way pip would (a ``.dist-info`` folder on ``sys.path``), so the leaderboard finds it only
through the task registry.
"""
from __future__ import annotations

import time
from pathlib import Path

from xlingbench.core.task import Chart, ModelRevision, Outcome, Task, TaskMetadata, TaskResult
from xlingbench.sinks import SinkSettings, open_sinks
from xlingbench.sinks.mlflow_sink import MlflowSink

MAIN_SCORES = {
    "script_separability": "accuracy",
    "neighbour_script_count": "mean_count",
    "translation_in_neighbours": "hit_at_10",
    "calign": "calign_max",
    "colap": "colap_max",
}


PLUGIN_NAME = "zeta_probe"
#: a plugin's task: a bar chart over ``recall/<language>`` and a line chart of step metric ``probe``
PLUGIN = Task(
    metadata=TaskMetadata(
        name=PLUGIN_NAME, description="a third-party probe", reference="test", main_score="recall", version="3",
        charts=(Chart("recall_by_language", "bar", "recall", "Probe recall per language", "language", "recall"),
                Chart("probe_by_layer", "line", "probe", "Probe accuracy by layer", "layer", "probe")),
    ),
    params=dict,
    run=lambda inputs, params: None,
)


def install_plugin(folder: Path) -> Path:
    """Write a ``.dist-info`` under ``folder`` naming :data:`PLUGIN` as an ``xlingbench.tasks`` entry
    point; returns ``folder``, to put on ``sys.path``."""
    info = folder / "zeta_probe_plugin-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zeta-probe-plugin\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[xlingbench.tasks]\n{PLUGIN_NAME} = tests.mlflow_plant:PLUGIN\n", encoding="utf-8")
    return folder


def plugin_result(score: float, warnings: list[str] | None = None) -> tuple[TaskResult, TaskMetadata]:
    """The plugin task's result: per-language recall with an interval, a per-layer curve, warnings."""
    return (result(PLUGIN_NAME, {"recall": score, "recall/en": score + 0.05, "recall/de": score - 0.05, "probe": score},
                   step_metrics={"probe": [(0, score / 2), (1, score), (2, score / 3)]},
                   intervals={"recall": (score - 0.02, score + 0.02)}, info={"warnings": warnings or []}),
            PLUGIN.metadata)


def metadata(task: str, higher_is_better: bool | None = True) -> TaskMetadata:
    """Metadata of a planted task: the real task's name and headline key."""
    return TaskMetadata(name=task, description="planted", reference="test", main_score=MAIN_SCORES.get(task, "score"),
                        version="1", higher_is_better=higher_is_better)


def open_sink(uri: str, experiment: str = "xlingbench") -> MlflowSink:
    """The MLflow sink on ``uri``, as the runner opens it."""
    return open_sinks(["mlflow"], SinkSettings(tracking_uri=uri, experiment=experiment))["mlflow"]


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
        (result("neighbour_script_count", {"mean_count": 1 + score, "std_count": 0.5, "share/1": 0.6, "share/2": 0.4},
                intervals={"mean_count": (0.9 + score, 1.1 + score)}),
         metadata("neighbour_script_count", higher_is_better=None)),
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
            client.set_terminated(run.info.run_id)  # FINISHED, as the sink leaves them: the board reads only those
            new_parent = new_parent or run.info.run_id
