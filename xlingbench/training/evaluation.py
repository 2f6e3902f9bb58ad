"""Evaluate one checkpoint folder of a training run, the same way for the callback, its background
process and ``xlingbench watch``.

Why one function: a checkpoint evaluated while training, in a background process or by a watcher
must land in the same place with the same task keys as ``xlingbench run -m OUT --checkpoints``
(one trajectory: the run's model name, the checkpoint's content fingerprint as its revision, the
training step), so that whichever came first, the others skip it.

Run as ``python -m xlingbench.training.evaluation JOB.json``, it is the callback's background
process: it evaluates the job's checkpoint and logs the headlines into the training run.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from xlingbench.core.task import Outcome
from xlingbench.harness.grid import GridResult, GridSettings
from xlingbench.harness.runner import RunRequest, run
from xlingbench.sinks import SinkSettings

#: the cheap tasks: they read only the input embedding matrix (seconds per checkpoint)
CHEAP_TASKS = ("script_separability", "neighbour_script_count", "translation_in_neighbours")


@dataclass(frozen=True)
class Evaluation:
    """What to run on each checkpoint and where to log it (JSON-serialisable: a background job carries it)."""

    tasks: tuple[str, ...] = CHEAP_TASKS
    #: the model name of the trajectory (None: the run folder's name)
    name: str | None = None
    #: run-wide options (``labels``, ``data``, ``languages``, ``seed``, ``dictionary``) and ``--set`` texts
    options: dict[str, Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    device: str = "cpu"
    dtype: str = "auto"
    cache_dir: str | None = None
    tracking_uri: str | None = None
    experiment: str = "xlingbench"
    sinks: tuple[str, ...] = ("mlflow",)
    results_dir: str = "results"

    def request(self, folder: Path) -> RunRequest:
        """The run of ``folder`` (a run folder, or one checkpoint folder of it) as one trajectory."""
        cache = None if self.cache_dir is None else Path(self.cache_dir)
        return RunRequest(models=[str(folder)], tasks=list(self.tasks), checkpoints=True, name=self.name,
                          options=dict(self.options), overrides=list(self.overrides), device=self.device, dtype=self.dtype,
                          cache_dir=cache, sinks=list(self.sinks),
                          sink_settings=SinkSettings(self.tracking_uri, self.experiment, Path(self.results_dir), cache),
                          grid=GridSettings())


def evaluate_folder(folder: Path, evaluation: Evaluation, report: Callable[[Outcome], None] = lambda o: None) -> GridResult:
    """Run ``evaluation`` on the checkpoint(s) of ``folder``; task runs the sinks hold are skipped."""
    return run(evaluation.request(folder), report)


def headlines(outcomes: list[Outcome]) -> dict[int, dict[str, float]]:
    """``step -> {"<task>/<main_score>": value}`` of the outcomes of checkpoints (the parent runs' metric names)."""
    found: dict[int, dict[str, float]] = {}
    for outcome in outcomes:
        if outcome.model.step is not None:
            found.setdefault(outcome.model.step, {})[f"{outcome.task.name}/{outcome.task.main_score}"] = outcome.headline
    return found


def log_to_run(tracking_uri: str, run_id: str, values: dict[int, dict[str, float]]) -> None:
    """Log each step's headlines into the MLflow run ``run_id`` (the training run) at that step."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    metrics = [Metric(key, value, stamp, step) for step, by_key in values.items() for key, value in by_key.items()]
    if metrics:
        MlflowClient(tracking_uri).log_batch(run_id, metrics=metrics)


def main(argv: list[str]) -> int:
    """The background job: ``JOB.json`` holds the folder, the Evaluation and the training run to log into."""
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    evaluation = Evaluation(**{k: tuple(v) if isinstance(v, list) else v for k, v in job["evaluation"].items()})
    result = evaluate_folder(Path(job["folder"]), evaluation)
    for failure in result.failed:
        print(f"xlingbench: failed {failure.label}: {failure.reason}", file=sys.stderr)
    if job.get("run_id"):
        log_to_run(job["tracking_uri"], job["run_id"], headlines(result.outcomes))
    return 1 if result.failed else 0


def job_document(folder: Path, evaluation: Evaluation, tracking_uri: str, run_id: str | None) -> str:
    """The JSON a background job reads (see :func:`main`)."""
    return json.dumps({"folder": str(folder), "evaluation": dataclasses.asdict(evaluation),
                       "tracking_uri": tracking_uri, "run_id": run_id})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
