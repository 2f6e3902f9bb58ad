"""What the command line says about destinations (:class:`SinkSettings`), apart from the sink
registry so that a sink module can take it without importing the registry that loads it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SinkSettings:
    """What the command line says about destinations; each sink reads the fields it needs."""

    tracking_uri: str | None = None
    experiment: str = "xlingbench"
    results_dir: Path = Path("results")
    #: the run's cache folder (None: the default one); the MLflow sink keeps its outbox there
    cache_dir: Path | None = None
