"""Lose nothing: a run killed anywhere (SIGKILL, no chance to clean up) and rerun gives the numbers
of a run never interrupted and leaves no staging behind; two identical runs at once in one
folder both finish, with identical numbers and one valid cache entry per key.

Kill points are chosen without test hooks in xlingbench: a driver script wraps one function so
that its Nth call kills the process, then calls the CLI app; the rerun is the plain CLI (in the
test's process, the same folder).
"""
from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.tiny_models import encoder_model, save_model, sentencepiece_tokenizer
from xlingbench.cli.main import app

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600
DRIVER = """
import importlib, os, signal, sys

module, name, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
owner = importlib.import_module(module)
*path, attribute = name.split(".")
for part in path:
    owner = getattr(owner, part)
original, calls = getattr(owner, attribute), []


def dying(*args, **kwargs):
    calls.append(1)
    if len(calls) == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)


setattr(owner, attribute, dying)
from xlingbench.cli.main import app
app(sys.argv[4:], prog_name="xlingbench")
"""


def _words(alphabet: str, n: int) -> list[str]:
    return ["".join(letters) for letters in itertools.product(alphabet, repeat=3)][:n]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, list[str]]:
    """A tiny XLM-R (Latin and Cyrillic words), en-de/en-ru dictionaries and an en-de parallel corpus;
    the run arguments of tasks 1-3 and of tasks 4-5 on it."""
    root = tmp_path_factory.mktemp("interruptions")
    en, de, ru = _words("abcdef", 40), _words("ghijkl", 40), _words("абвгде", 40)
    pieces = ["\u2581" + w for w in en + de + ru]
    matrix = np.random.default_rng(0).normal(size=(len(pieces) + 4, 16)).astype(np.float32)
    model = save_model(root / "model", sentencepiece_tokenizer(pieces), encoder_model(matrix, layers=2))
    for lang, words in (("de", de), ("ru", ru)):
        (root / f"en-{lang}.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in zip(en, words)))
    rng = np.random.default_rng(1)
    lines = [rng.permutation(40)[:8] for _ in range(96)]
    for lang, words in (("en", en), ("de", de)):
        (root / f"c.{lang}.tok").write_text("".join(" ".join(words[i] for i in line) + "\n" for line in lines))
    common = ["run", "-m", str(model)]
    return {
        "tasks 1-3": common + ["-t", "script_separability", "-t", "neighbour_script_count", "-t", "translation_in_neighbours",
                               "--dictionary", f"{root / 'en-de.tsv'},{root / 'en-ru.tsv'}",
                               "--set", "script_separability.min_tokens=20", "--set", "script_separability.folds=3",
                               "--set", "neighbour_script_count.sample=1.0", "--set", "neighbour_script_count.bootstrap=100"],
        "tasks 4-5": common + ["-t", "calign", "-t", "colap", "--data", str(root / "c"), "--languages", "en,de",
                               "--set", "k=6", "--set", "n_init=2", "--set", "batch_size=8"],
    }


def _where(folder: Path) -> list[str]:
    return ["--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}", "--cache-dir", str(folder / "cache")]


def _cli(args: list[str], cwd: Path, driver: list[str] | None = None) -> subprocess.Popen:
    """The CLI in a subprocess (under the kill driver when given), importing this checkout's xlingbench."""
    command = ["-c", DRIVER, *driver] if driver else ["-m", "xlingbench"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, *command, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    output, _ = process.communicate(timeout=TIMEOUT_S)
    return process.returncode, output


def _results(folder: Path) -> dict[str, list[dict]]:
    """Every finished task run's ``result.json`` (metrics, step metrics, intervals, tables, info) by task,
    with timings dropped and ``folder`` written FOLDER: the only things two correct runs differ in."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("xlingbench").experiment_id
    found: dict[str, list[dict]] = {}
    for run in client.search_runs([experiment], "tags.`xlingbench.role` = 'task' and attributes.status = 'FINISHED'"):
        text = Path(client.download_artifacts(run.info.run_id, "result.json")).read_text()
        result = json.loads(text.replace(str(folder), "FOLDER"))
        result.pop("timings")
        metrics = {k: v for k, v in run.data.metrics.items() if not k.startswith("time_")}
        found.setdefault(run.data.tags["xlingbench.task"], []).append({"result": result, "metrics": metrics})
    return found


#: folders of the cache directory that hold no cache entries: the library log, and the MLflow
#: sink's outbox (results waiting for the store; checked to be empty on its own)
NOT_ENTRIES = ("logs", "outbox")


def _leftovers(cache: Path) -> list[str]:
    """Staging the cache would not count as an entry: hidden temporaries, ``.partial`` folders, entries without meta.json."""
    entries = [p for kind in cache.iterdir() if kind.is_dir() and kind.name not in NOT_ENTRIES for p in kind.iterdir()]
    return sorted(str(p.relative_to(cache)) for p in entries if p.suffix != ".lock" and (
        p.name.startswith(".") or p.suffix == ".partial" or not (p / "meta.json").is_file()))


def _entries(cache: Path) -> dict[str, set[str]]:
    return {kind.name: {p.name for p in kind.iterdir() if (p / "meta.json").is_file()}
            for kind in cache.iterdir() if kind.is_dir() and kind.name not in NOT_ENTRIES}


@pytest.fixture(scope="module")
def clean(tiny, tmp_path_factory) -> dict[str, tuple[dict[str, list[dict]], dict[str, set[str]]]]:
    """What each group of tasks gives when never interrupted (run in this process: faster), and its cache keys."""
    found = {}
    for group, args in tiny.items():
        folder = tmp_path_factory.mktemp("clean")
        result = CliRunner().invoke(app, args + _where(folder))
        assert result.exit_code == 0, result.output
        found[group] = (_results(folder), _entries(folder / "cache"))
    return found


def _assert_like_clean(folder: Path, clean: tuple[dict[str, list[dict]], dict[str, set[str]]]) -> None:
    """Every task has finished runs, each equal to the uninterrupted one; the cache holds exactly its entries."""
    expected, keys = clean
    results = _results(folder)
    assert set(results) == set(expected)
    for task, runs in results.items():
        assert all(run == expected[task][0] for run in runs), task
    assert _leftovers(folder / "cache") == []
    assert [p.name for p in (folder / "cache").glob("outbox/*/*.json")] == []  # every kept result was sent
    assert _entries(folder / "cache") == keys


KILLS = [
    pytest.param("tasks 1-3", "xlingbench.compute.separability", "fit_logistic", 1, id="task1-probe-fit"),
    pytest.param("tasks 1-3", "xlingbench.compute.neighbours", "top_k_neighbours", 1, id="task2-neighbour-search"),
    pytest.param("tasks 1-3", "xlingbench.tasks.translation_in_neighbours", "best_target_ranks", 1, id="task3-ranking",
                 marks=pytest.mark.integration),
    pytest.param("tasks 1-3", "xlingbench.inputs.cache", "Cache.publish", 1, id="cache-publish",
                 marks=pytest.mark.integration),
    pytest.param("tasks 1-3", "xlingbench.sinks.mlflow_sink", "MlflowSink._log_artifacts", 2, id="mlflow-half-logged",
                 marks=pytest.mark.integration),
    pytest.param("tasks 4-5", "xlingbench.inputs.word_vectors", "_write_batch", 9, id="extraction-second-language"),
    pytest.param("tasks 4-5", "xlingbench.inputs.word_vectors", "_finish", 1, id="extraction-before-publish",
                 marks=pytest.mark.integration),
    pytest.param("tasks 4-5", "xlingbench.compute.fast_align", "align", 1, id="alignment",
                 marks=pytest.mark.integration),
    pytest.param("tasks 4-5", "xlingbench.compute.kmeans", "kmeans", 3, id="clustering",
                 marks=pytest.mark.integration),
]


@pytest.mark.parametrize("group,module,function,nth", KILLS)
def test_a_run_killed_anywhere_and_rerun_equals_an_uninterrupted_one(group, module, function, nth, tiny, clean, tmp_path,
                                                                      monkeypatch):
    """The killed run needs a process of its own; the rerun is the CLI in this process (in the same
    folder), which spares a second interpreter's imports, some 10 s of CPU per kill point. It only
    finds on disk what the killed process left: xlingbench keeps no state between calls but fixed
    packaged data."""
    args = tiny[group] + _where(tmp_path)
    code, output = _finish(_cli(args, tmp_path, driver=[module, function, str(nth)]))
    assert code == -signal.SIGKILL, f"the kill point was never reached:\n{output}"
    monkeypatch.chdir(tmp_path)
    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 0, rerun.output
    _assert_like_clean(tmp_path, clean[group])


@pytest.mark.parametrize("group", ["tasks 1-3", pytest.param("tasks 4-5", marks=pytest.mark.integration)])
def test_two_identical_runs_at_once_both_finish_with_the_same_numbers(group, tiny, clean, tmp_path):
    args = tiny[group] + ["--cache-dir", str(tmp_path / "cache")]  # the default store, ./mlflow.db, created by both at once
    both = [_cli(args, tmp_path) for _ in range(2)]
    outcomes = [_finish(process) for process in both]
    assert [code for code, _ in outcomes] == [0, 0], "\n".join(output for _, output in outcomes)
    _assert_like_clean(tmp_path, clean[group])


def test_an_experiment_another_run_created_meanwhile_is_used_not_a_crash(tracking_uri):
    """The race two first runs hit: both find no experiment, one creates it, the other's create fails."""
    import mlflow

    from xlingbench.sinks.mlflow_sink import experiment_id

    client = mlflow.MlflowClient(tracking_uri)
    made, real, lookups = client.create_experiment("xlingbench"), client.get_experiment_by_name, []

    def late(name: str):  # the first lookup ran before the other run's create
        lookups.append(name)
        return None if len(lookups) == 1 else real(name)

    client.get_experiment_by_name = late
    assert experiment_id(client, "xlingbench") == made and len(lookups) == 2
    assert real("xlingbench").tags["mlflow.experimentKind"] == "custom_model_development"
