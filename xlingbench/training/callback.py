"""A transformers ``TrainerCallback`` that evaluates each checkpoint as training saves it.

Why evaluate the checkpoint just written, not the network in memory: the saved folder is what
``xlingbench run -m OUT --checkpoints`` and ``xlingbench watch`` read, so all three give the same
task keys and one trajectory (whichever ran first, the others skip it), and the model being
trained is never touched: no forward pass on it, no mode switch, no gradient. The only shared
state is the process's random number generators, saved before and restored after an in-process
evaluation, so a run with the callback ends with the same weights as one without.

Where results go: the usual xlingbench runs (a parent run per checkpoint, nested task runs, the
trajectory) in the training run's own experiment and store, and each task's headline
(``<task>/<main_score>``) into the training run itself at the training step, beside the loss.
The training run is the one MLflow has active (transformers' MLflow integration opens it,
``report_to="mlflow"``); without one, only the xlingbench runs are logged.

``background=True`` runs each evaluation in a separate process (one at a time, in save order),
so training goes on while a checkpoint is evaluated; ``on_train_end`` waits for the last one.
"""
from __future__ import annotations

import dataclasses
import queue
import random
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from transformers import TrainerCallback

from xlingbench.harness.runner import plan
from xlingbench.training.evaluation import CHEAP_TASKS, Evaluation, evaluate_folder, headlines, job_document, log_to_run

#: the folder Trainer writes each checkpoint to, under ``args.output_dir``
CHECKPOINT_FOLDER = "checkpoint-{step}"


class XlingbenchCallback(TrainerCallback):
    """Evaluate ``tasks`` on each checkpoint Trainer saves and log the headlines at the training step.

    ``tasks`` default to the three cheap ones (they read only the input embedding matrix);
    ``name`` is the trajectory's model name (default: the output folder's name); ``options`` and
    ``overrides`` are ``xlingbench run``'s run-wide options and ``--set`` texts;
    ``tracking_uri``/``experiment`` default to the training run's (else xlingbench's defaults);
    ``every``: evaluate only the checkpoints whose step is a multiple of it (default: every save).
    """

    def __init__(self, tasks: tuple[str, ...] | list[str] = CHEAP_TASKS, *, name: str | None = None,
                 options: dict[str, Any] | None = None, overrides: tuple[str, ...] | list[str] = (),
                 device: str = "cpu", cache_dir: str | Path | None = None, tracking_uri: str | None = None,
                 experiment: str | None = None, background: bool = False, every: int | None = None) -> None:
        self.evaluation = Evaluation(tasks=tuple(tasks), name=name, options=dict(options or {}), overrides=tuple(overrides),
                                     device=device, cache_dir=None if cache_dir is None else str(cache_dir),
                                     tracking_uri=tracking_uri, experiment=experiment or "xlingbench")
        self.explicit_experiment = experiment is not None
        self.background = background
        if every is not None and every < 1:
            raise ValueError(f"every={every} must be a positive number of steps (or None: every save)")
        self.every = every
        #: (checkpoint folder, command) of each background job, None to stop
        self.jobs: queue.Queue[tuple[str, list[str]] | None] = queue.Queue()
        self.worker: threading.Thread | None = None
        #: (checkpoint or background job, reason) of each evaluation that failed (training goes on)
        self.failures: list[tuple[str, str]] = []

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Evaluate the checkpoint Trainer has just written (on the main process only)."""
        if not state.is_world_process_zero or (self.every is not None and state.global_step % self.every):
            return
        folder = Path(args.output_dir) / CHECKPOINT_FOLDER.format(step=state.global_step)
        evaluation, run_id = self._target()
        if self.background:
            self._submit(folder, evaluation, run_id)
            return
        with preserved_rng():
            result = evaluate_folder(folder, evaluation)
        if run_id is not None:
            log_to_run(evaluation.tracking_uri, run_id, headlines(result.outcomes))
        for failure in result.failed:  # training goes on: a checkpoint that cannot be evaluated is said, not fatal
            self._failed(str(folder), failure.reason)

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Check the tasks, options and ``--set`` values now: a typo fails before training, not at the first save."""
        plan(dataclasses.replace(self.evaluation.request(Path(args.output_dir)), models=[]))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Wait for the background evaluations still queued or running."""
        if self.worker is not None:
            self.jobs.put(None)
            self.worker.join()
            self.worker = None

    def _target(self) -> tuple[Evaluation, str | None]:
        """The evaluation logging to the active MLflow run's store and experiment, and that run's id."""
        import mlflow

        active = mlflow.active_run()
        if active is None:
            return self.evaluation, None
        uri = self.evaluation.tracking_uri or mlflow.get_tracking_uri()
        experiment = self.evaluation.experiment
        if not self.explicit_experiment:
            experiment = mlflow.MlflowClient(uri).get_experiment(active.info.experiment_id).name
        return dataclasses.replace(self.evaluation, tracking_uri=uri, experiment=experiment), active.info.run_id

    def _submit(self, folder: Path, evaluation: Evaluation, run_id: str | None) -> None:
        """Queue a background job; one worker thread runs them one after another in a child process."""
        from xlingbench.sinks.mlflow_sink import resolve_tracking_uri

        uri = resolve_tracking_uri(evaluation.tracking_uri)
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="xlingbench-job-", delete=False, encoding="utf-8") as handle:
            handle.write(job_document(folder, evaluation, uri, run_id))
        self.jobs.put((str(folder), [sys.executable, "-m", "xlingbench.training.evaluation", handle.name]))
        if self.worker is None:
            self.worker = threading.Thread(target=self._work, name="xlingbench-evaluations", daemon=True)
            self.worker.start()

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            folder, command = job
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            Path(command[-1]).unlink(missing_ok=True)
            if done.returncode != 0:
                lines = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])
                self._failed(folder, lines[-1])

    def _failed(self, what: str, reason: str) -> None:
        """Remember and say (one line on stderr) that a checkpoint's evaluation failed."""
        self.failures.append((what, reason))
        print(f"xlingbench: evaluating {what} failed: {reason}", file=sys.stderr)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the block and put back every random generator training draws from (Python's, numpy's,
    torch's CPU and CUDA ones) and torch's gradient mode, whatever the block did to them."""
    import numpy as np
    import torch

    python, numpy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    grad = torch.is_grad_enabled()
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        torch.set_grad_enabled(grad)
