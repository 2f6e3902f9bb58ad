"""A checkpoint grid on Ray: 2 models x 3 checkpoints x 2 tasks (6 units, 12 task runs) with two
workers against one (the baseline), in the same session.

Each round is ``xlingbench run --executor ray --workers N`` in a subprocess, from an empty cache
and an empty store, so it includes starting the local Ray cluster and every worker's imports:
what a user waits for. The models have 3,000 tokens of 128 dimensions, so a unit's work (loading,
neighbours, cross-validated probes) outweighs Ray's fixed costs. Run:
``python -m pytest benchmarks/bench_grid.py --benchmark-enable -q``; the ratio of the two means is
the figure to quote (on 2 cores, two workers can at best halve the units' share of the time).
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_models import checkpointed_model

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
STEPS = (100, 200, 300)
MODELS = ("bench/grid-a", "bench/grid-b")
_ROUND = itertools.count()


@pytest.fixture(scope="module")
def grid(tmp_path_factory, hub_cache) -> list[str]:
    for seed, repo in enumerate(MODELS):
        checkpointed_model(tmp_path_factory.mktemp("grid"), hub_cache, repo, STEPS, seed=seed, per_script=1500, dim=128)
    return [*(a for repo in MODELS for a in ("-m", repo)), *(a for s in STEPS for a in ("-r", f"step{s}@{s}")),
            "-t", "script_separability", "-t", "neighbour_script_count", "--set", "min_tokens=30", "--set", "sample=1.0"]


def _run_grid(args: list[str], workers: int, folder: Path) -> None:
    folder.mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "xlingbench", "run", *args, "--executor", "ray", "--workers", str(workers),
                           "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", "--cache-dir", str(folder / "cache")],
                          cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("workers", [1, 2], ids=["one_worker_baseline", "two_workers"])
def test_grid_wall_time(benchmark, grid, workers, tmp_path) -> None:
    benchmark.pedantic(lambda: _run_grid(grid, workers, tmp_path / f"round{next(_ROUND)}"), rounds=2, iterations=1)
