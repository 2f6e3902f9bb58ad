"""``layers`` selects what is extracted and stored, not only what is scored.

Tiny random models from tests/test_word_vectors.py; the forward passes are counted to show that
a request for a subset of a stored entry's layers is answered without extracting again, and the
files on disk show that only the layers asked for are written.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_word_vectors import SENTENCES, TinySource, build_tokenizer, count_calls, representations, tiny_dirs  # noqa: F401
from xlingbench.core.errors import UserError
from xlingbench.inputs.cache import Cache
from xlingbench.inputs.representations import Representations


def layer_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("layer_*.npy"))


def test_default_extracts_and_stores_every_layer(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    vectors = representations(tiny_dirs, "decoder", tmp_path).extract_vectors(SENTENCES, language="xx")
    assert vectors.num_layers == 3 and vectors.stored_layers == [0, 1, 2]
    assert layer_files(vectors.directory) == ["layer_000.npy", "layer_001.npy", "layer_002.npy"]
    assert json.loads((vectors.directory / "meta.json").read_text())["layers"] == "all"


def test_asked_layers_alone_are_stored_and_equal_the_full_extraction(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    full = representations(tiny_dirs, "decoder", tmp_path / "a").extract_vectors(SENTENCES, language="xx", batch_size=2)
    some = representations(tiny_dirs, "decoder", tmp_path / "b").extract_vectors(SENTENCES, language="xx", batch_size=2,
                                                                                  layers="2, 0")
    assert some.num_layers == 3 and some.stored_layers == [0, 2]
    assert layer_files(some.directory) == ["layer_000.npy", "layer_002.npy"]
    assert json.loads((some.directory / "meta.json").read_text())["layers"] == "0,2"
    for layer in (0, 2):
        np.testing.assert_array_equal(np.asarray(some.layer(layer)), np.asarray(full.layer(layer)))
    with pytest.raises(IndexError, match="not extracted"):
        some.layer(1)


def test_a_subset_of_a_stored_entry_is_not_extracted_again(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "decoder", tmp_path)
    calls = count_calls(reps.model)
    some = reps.extract_vectors(SENTENCES, language="xx", batch_size=2, layers="1,2")
    extracted = len(calls)
    assert extracted == 1 + 3  # the probe and three batches
    subset = reps.extract_vectors(SENTENCES, language="xx", batch_size=2, layers="2")
    assert len(calls) == extracted and subset.directory == some.directory
    np.testing.assert_array_equal(np.asarray(subset.layer(2)), np.asarray(some.layer(2)))
    other = reps.extract_vectors(SENTENCES, language="xx", batch_size=2, layers="0")  # not held: extracted
    assert len(calls) == 2 * extracted and other.stored_layers == [0]
    everything = reps.extract_vectors(SENTENCES, language="xx", batch_size=2)  # no entry holds all three
    assert len(calls) == 3 * extracted and everything.stored_layers == [0, 1, 2]
    again = reps.extract_vectors(SENTENCES, language="xx", batch_size=2, layers="0,1")  # two entries hold it
    assert len(calls) == 3 * extracted and set(again.stored_layers) >= {0, 1}


def test_a_superset_from_other_settings_is_not_reused(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "decoder", tmp_path)
    calls = count_calls(reps.model)
    reps.extract_vectors(SENTENCES, language="xx", batch_size=2)
    extracted = len(calls)
    reps.extract_vectors(SENTENCES, language="xx", batch_size=2, layers="1", aggregation="mean")
    reps.extract_vectors(SENTENCES, language="yy", batch_size=2, layers="1")
    assert len(calls) == 3 * extracted


def test_bad_layers_are_user_errors(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "decoder", tmp_path)
    with pytest.raises(UserError, match="comma list"):
        reps.extract_vectors(SENTENCES, language="xx", layers="middle")
    assert "model" not in reps.__dict__  # refused before the model loads
    with pytest.raises(UserError, match="layers 0..2"):
        reps.extract_vectors(SENTENCES, language="xx", layers="1,7")
    assert not list((tmp_path / "word_vectors").glob("*/meta.json"))


def test_a_deep_model_asked_for_three_layers_writes_three(tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    model = GPT2Model(GPT2Config(vocab_size=len(build_tokenizer("decoder")), n_embd=16, n_layer=31, n_head=2, n_positions=64)).eval()
    folder = tmp_path / "deep"
    model.save_pretrained(folder)
    build_tokenizer("decoder").save_pretrained(folder)
    reps = Representations(TinySource(folder, "decoder"), Cache(tmp_path / "cache"), device="cpu")
    vectors = reps.extract_vectors(SENTENCES, language="xx", layers="0,16,31")
    assert vectors.num_layers == 32 and vectors.stored_layers == [0, 16, 31]
    assert layer_files(vectors.directory) == ["layer_000.npy", "layer_016.npy", "layer_031.npy"]
    with torch.no_grad():
        ids = torch.tensor([build_tokenizer("decoder")(" ".join(SENTENCES[2]))["input_ids"]])
        states = model(input_ids=ids, output_hidden_states=True).hidden_states
    row = vectors.words.index("sat")
    np.testing.assert_allclose(np.asarray(vectors.layer(31)[row], dtype=np.float32), states[31][0, -1].numpy(), rtol=2e-3, atol=2e-3)
