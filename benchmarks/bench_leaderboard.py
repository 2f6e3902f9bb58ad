"""Leaderboard build time (collect + render the site) for 10 and 500 runs in a SQLite store.

Run: pytest benchmarks/bench_leaderboard.py --benchmark-enable -p no:cacheprovider
The stores are planted once per session (not timed): one model through the xlingbench's MLflow sink
(its five task runs with tables and per-layer histories), then copies of its runs.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from xlingbench.leaderboard.collect import collect
from xlingbench.leaderboard.render import write_site
from tests.mlflow_plant import clone_models, full_results, model_revision, open_sink, plant

RUNS_PER_MODEL = 5  # a parent run and four task runs


@pytest.fixture(scope="session", params=[10, 500], ids=lambda n: f"{n}runs")
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """A store of ``param`` runs: a MLflow sink-planted model and clones of it."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('bench') / 'mlflow.db'}"
    parent, _ = plant(open_sink(uri), model_revision("template", "0" * 40), full_results(0.5))
    clone_models(uri, parent, request.param // RUNS_PER_MODEL - 1)
    return uri, request.param


def test_build_leaderboard(benchmark, store: tuple[str, int], tmp_path: Path) -> None:
    uri, runs = store
    index = benchmark(lambda: write_site(collect(uri), tmp_path / "site"))
    assert index.exists()
    assert len(collect(uri).rows) == runs - runs // RUNS_PER_MODEL
