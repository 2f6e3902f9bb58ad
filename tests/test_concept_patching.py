"""The concept_patching task end to end on tiny decoders: prompts, concept pairs, results,
determinism, the encoder refusal, and the per-step curve of two revisions in MLflow."""
from __future__ import annotations

import gzip
import hashlib
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from xlingbench.cli.main import app
from xlingbench.leaderboard.collect import collect
from xlingbench.leaderboard.render import slug, write_site
from xlingbench.inputs.concept_words import CLDR_FILE, CLDR_SHA256, load_concept_words
from xlingbench.tasks.concept_patching import Params
from xlingbench.tasks.patching_prompts import PromptBuilder, choose, concept_pairs
from tests.tiny_models import byte_bpe_tokenizer, encoder_model, publish, save_model, sentencepiece_tokenizer, tiny_decoder

LANGUAGES = ("en", "de", "fr", "es", "it")
LETTERS = "bcdghklmnprstvw"  # one first letter per concept: concepts share no answer token
TASK_SETS = ["--set", "concept_patching.concept_pairs=3", "--set", "concept_patching.shots=2",
             "--set", "concept_patching.pairs=en-de,de-fr", "--set", "concept_patching.generate=2",
             "--set", "concept_patching.examples=1"]


def byte_tokenizer():
    """A byte-level tokenizer with every byte a token (no merges): any text encodes."""
    from tokenizers import pre_tokenizers

    return byte_bpe_tokenizer(sorted(pre_tokenizers.ByteLevel.alphabet()))


@pytest.fixture(scope="module")
def words_file(tmp_path_factory):
    rows = ["concept\t" + "\t".join(LANGUAGES)]
    rows += [f"c{k}\t" + "\t".join(f"{letter}{'aeiou'[i]}{k}" for i, _ in enumerate(LANGUAGES)) for k, letter in enumerate(LETTERS[:9])]
    path = tmp_path_factory.mktemp("words") / "words.tsv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def decoder_repo(tmp_path_factory, hub_cache) -> dict[int, str]:
    """tiny/patching with two revisions (step1, step2): two differently seeded decoders."""
    tokenizer = byte_tokenizer()
    commits = {}
    for step in (1, 2):
        folder = save_model(tmp_path_factory.mktemp(f"decoder{step}"), tokenizer, tiny_decoder(len(tokenizer), seed=step))
        commits[step] = publish(folder, hub_cache, "tiny/patching", f"step{step}")
    return commits


def test_the_frozen_concepts_are_the_pinned_file():
    text = gzip.decompress(CLDR_FILE.read_bytes()).decode("utf-8")
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == CLDR_SHA256
    words = load_concept_words("cldr")
    assert {"en", "de", "fr", "zh", "ru"} <= set(words.languages) and words.names["fr"] == "Français"
    assert words.words["country-DE"]["de"] == "Deutschland" and words.words["month-3"]["ru"] == "март"
    assert all(len(w) == len(words.languages) for w in words.words.values())


def test_prompts_end_at_the_word_and_pairs_share_no_token(words_file):
    words = load_concept_words(str(words_file))
    tokenizer = byte_tokenizer()
    demos, candidates = choose(words, LANGUAGES, shots=2, seed=3)
    assert choose(words, LANGUAGES, shots=2, seed=3) == (demos, candidates) and not set(demos) & set(candidates)
    builder = PromptBuilder(tokenizer, words, demos)
    prompt = builder.target("c0", "en", "de")
    d = words.words[demos[0]]
    assert prompt.text.startswith(f'English: "{d["en"]}" - Deutsch: "{d["de"]}"\n') and prompt.text.endswith('English: "ba0" - Deutsch: "')
    assert tokenizer.decode(prompt.ids[: prompt.position + 1]).endswith("ba0")
    source = builder.source("c0", "en", "de")
    assert source.ids == prompt.ids[: prompt.position + 1] and source.position == prompt.position
    tokens = {c: {i for lang in LANGUAGES for i in builder.answers(c, lang)} for c in candidates}
    pairs = concept_pairs(tokens, 5, seed=3)
    assert len(pairs) == 5 and all(not tokens[s] & tokens[t] for s, t in pairs)
    assert len({s for s, _ in pairs}) == 5 and len({t for _, t in pairs}) == 5
    assert concept_pairs(tokens, 5, seed=3) == pairs
    clash = {"x": {1, 2}, "y": {2, 3}, "z": {4}}
    assert set(concept_pairs(clash, 10, seed=0)) <= {("x", "z"), ("z", "x"), ("y", "z"), ("z", "y")}


def test_two_revisions_give_a_patching_curve_per_step(decoder_repo, words_file, tracking_uri, tmp_path):
    import mlflow

    result = CliRunner().invoke(app, ["run", "-m", "tiny/patching", "-r", "step1@1", "-r", "step2@2", "-t", "concept_patching",
                                      "--set", f"concept_patching.words={words_file}", *TASK_SETS,
                                      "--tracking-uri", tracking_uri, "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("xlingbench").experiment_id
    trajectory = client.search_runs([experiment], "tags.`xlingbench.role` = 'trajectory'")
    assert len(trajectory) == 1
    history = client.get_metric_history(trajectory[0].info.run_id, "concept_patching/success_max")
    assert sorted(p.step for p in history) == [1, 2]
    runs = client.search_runs([experiment], "tags.`xlingbench.role` = 'task'")
    assert len(runs) == 2
    for run in runs:
        states = client.get_metric_history(run.info.run_id, "success/seen")
        assert sorted(p.step for p in states) == [0, 1, 2]  # three decoder layers: patches start at states 0..2
        assert 0 <= run.data.metrics["success_max"] <= 1 and run.data.metrics["last_half_state"] in (0, 1, 2)
        assert run.data.metrics["success_max_ci_low"] <= run.data.metrics["success_max"] <= run.data.metrics["success_max_ci_high"]
        for name in ("seen", "tgt", "en_en", "unpatched"):
            assert f"success/{name}/en-de" in {m for m in client.get_run(run.info.run_id).data.metrics}
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert "plots/success_seen_by_state.svg" in artifacts
    write_site(collect(tracking_uri), tmp_path / "site")
    page = (tmp_path / "site" / "models" / f"{slug('tiny/patching')}.html").read_text()
    chart = page[page.index("<title>concept_patching over training</title>"):]
    assert len(re.findall(r"<title>configuration [^<]* @ [12]: [^<]*</title></circle>", chart[:chart.index("</svg>")])) == 2


def test_the_same_run_gives_the_same_numbers_and_generations(decoder_repo, words_file, tmp_path):
    from xlingbench import evaluate

    params = {"concept_patching": {"words": str(words_file), "concept_pairs": 3, "shots": 2, "pairs": ["en-de"],
                                   "generate": 2, "examples": 1}}
    first, second = (evaluate(["tiny/patching"], ["concept_patching"], revisions=["step1"], params=params,
                              cache_dir=tmp_path / name)[0].result for name in ("a", "b"))
    assert first.step_metrics == second.step_metrics and first.tables == second.tables
    generations = first.tables["generations"]
    assert len(generations) == 3 * 1 + 1  # one concept pair: three settings from state 0 (every third state), and unpatched
    assert {"copy", "homograph", "correct", "output", "expected"} <= set(generations[0])
    assert all(g["homograph"] is False for g in generations)  # every word of the file differs by language


def test_a_bfloat16_run_patches_in_bfloat16(decoder_repo, words_file, tmp_path):
    """The CPU stand-in for the GPU path: weights, states and patches in bfloat16, masses still probabilities."""
    from xlingbench import evaluate

    params = {"concept_patching": {"words": str(words_file), "concept_pairs": 2, "shots": 2, "pairs": ["de-fr"], "generate": 0}}
    outcome = evaluate(["tiny/patching"], ["concept_patching"], revisions=["step2"], params=params, dtype="bfloat16",
                       cache_dir=tmp_path / "cache")[0]
    assert outcome.model.provenance["dtype"] == "bfloat16"
    curve = [v for _, v in outcome.result.step_metrics["success/tgt"]]
    assert len(curve) == 3 and all(0 <= v <= 1 for v in curve)
    assert any((tmp_path / "cache" / "residual_states").iterdir())


def test_an_encoder_is_left_out_in_one_line(tmp_path, hub_cache):
    pieces = ["\u2581" + w for w in ("water", "Wasser", "eau", "fire")]
    folder = save_model(tmp_path / "enc", sentencepiece_tokenizer(pieces), encoder_model(np.eye(8, dtype=np.float32)))
    publish(folder, hub_cache, "tiny/encoder-for-patching")
    result = CliRunner().invoke(app, ["run", "-m", "tiny/encoder-for-patching", "-t", "concept_patching", "--sink", "json",
                                      "--results-dir", str(tmp_path / "res"), "--cache-dir", str(tmp_path / "cache")])
    assert "skipped tiny/encoder-for-patching concept_patching: it runs on decoder models and this is an encoder model." in result.output
    assert "Traceback" not in result.output and not list((tmp_path / "res").rglob("concept_patching.json"))


def test_a_source_without_a_head_is_refused_in_one_line(tmp_path):
    """A source the runner cannot tell is an encoder (no ``load_causal_lm``) is refused by the task itself."""
    from xlingbench.core.errors import UserError
    from xlingbench.tasks.concept_patching import run
    from tests.tiny_models import fake_inputs

    inputs = fake_inputs(["\u2581a", "\u2581b"], np.eye(2, dtype=np.float32), tmp_path)
    with pytest.raises(UserError, match="needs a decoder-only model"):
        run(inputs, Params())


def test_words_without_a_disjoint_pair_are_one_user_error(decoder_repo, tmp_path):
    from xlingbench import evaluate
    from xlingbench.core.errors import UserError

    clashing = tmp_path / "same-letter.tsv"
    clashing.write_text("concept\ten\tde\n" + "".join(f"c{k}\tba{k}\tbe{k}\n" for k in range(6)), encoding="utf-8")
    params = {"concept_patching": {"words": str(clashing), "shots": 2, "pairs": ["en-de"]}}
    with pytest.raises(UserError, match="share no answer token"):
        evaluate(["tiny/patching"], ["concept_patching"], revisions=["step1"], params=params, cache_dir=tmp_path / "cache")


def test_a_generation_cut_by_the_token_limit_counts_when_it_begins_the_word():
    from xlingbench.tasks.concept_patching import _says

    assert _says("Émirats arab", "Émirats arabes unis") and _says('Qatar"\nEnglish', "Qatar")
    assert not _says('Émirats"', "Émirats arabes unis") and not _says('Égypte"\n', "Émirats arabes unis") and not _says("", "x")


@pytest.mark.parametrize("field, value, message", [
    ("pairs", ["en-en"], "pair of two languages"), ("pairs", ["english-de"], "pair of two languages"),
    ("concept_pairs", 0, "1 or more"), ("words", "no/such/file.tsv", "existing file"), ("examples", -1, "0 or more"),
])
def test_bad_parameters_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        Params(**{field: value}).validate()
