"""Word-vector extraction against a direct ``output_hidden_states`` computation, caching, resume.

Tiny random models (BERT-type encoder, T5, GPT-2-type decoder) and a tiny WordPiece tokenizer
are built here and round-tripped through save_pretrained / from_pretrained. The reference
vectors are computed without word_ids(): each word is tokenised on its own and the spans are
laid out by hand around the special tokens.
"""
from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from xlingbench.inputs.cache import Cache
from xlingbench.core.errors import UserError
from xlingbench.inputs.representations import Representations
from xlingbench.inputs.word_vectors import KIND, WordVectors, extract_word_vectors

VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "</s>", "<s>", "the", "cat", "sat", "on", "mat"]
    + list(string.ascii_lowercase) + ["##" + c for c in string.ascii_lowercase] + ["##at", "##er"]
)
IDS = {token: i for i, token in enumerate(VOCAB)}
#: special tokens around a sentence, per architecture: (before, after)
TEMPLATES = {"encoder": (["[CLS]"], ["[SEP]"]), "encoder-decoder": ([], ["</s>"]), "decoder": (["<s>"], [])}
SENTENCES = [
    ["the", "zebra", "cat"],
    ["water", "on", "the", "mat", "quickly"],
    ["sat"],
    ["xylophone", "the", "cat", "sat", "on", "a", "mat"],
    ["jumper", "mat"],
]


def build_tokenizer(arch: str) -> Any:
    """WordPiece over letters, so most words are several subwords and aggregation matters."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordPiece(IDS, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    before, after = TEMPLATES[arch]
    backend.post_processor = processors.TemplateProcessing(
        single=" ".join(before + ["$A"] + after), special_tokens=[(t, IDS[t]) for t in before + after]
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", eos_token="</s>")


def build_model(arch: str) -> Any:
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model, T5Config, T5Model

    torch.manual_seed(0)
    if arch == "encoder":
        return BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, max_position_embeddings=64))
    if arch == "encoder-decoder":
        return T5Model(T5Config(
            vocab_size=len(VOCAB), d_model=16, d_ff=32, d_kv=8, num_layers=2, num_decoder_layers=2, num_heads=2,
            pad_token_id=IDS["[PAD]"], eos_token_id=IDS["</s>"], decoder_start_token_id=IDS["[PAD]"],
        ))
    return GPT2Model(GPT2Config(vocab_size=len(VOCAB), n_embd=16, n_layer=2, n_head=2, n_positions=64))


class TinySource:
    """A ModelSource over a save_pretrained directory (test-local)."""

    def __init__(self, directory: Path, arch: str) -> None:
        self.directory, self.arch = directory, arch
        self.name = self.model_id = f"tiny-{arch}"
        self.revision = "0" * 40

    def load_tokenizer(self) -> Any:
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(self.directory)

    def load_model(self) -> Any:
        from transformers import AutoModel

        return AutoModel.from_pretrained(self.directory)

    def load_embedding_matrix(self) -> np.ndarray:
        return self.load_model().get_input_embeddings().weight.detach().numpy()


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    dirs = {}
    for arch in TEMPLATES:
        directory = tmp_path_factory.mktemp(arch)
        build_model(arch).save_pretrained(directory)
        build_tokenizer(arch).save_pretrained(directory)
        dirs[arch] = directory
    return dirs


def representations(tiny_dirs: dict[str, Path], arch: str, cache_root: Path) -> Representations:
    return Representations(TinySource(tiny_dirs[arch], arch), Cache(cache_root), device="cpu")


def reference(model: Any, arch: str, side: str, words: list[str], aggregation: str) -> np.ndarray:
    """(layers, words, d) from one unbatched forward pass, spans laid out by hand."""
    tokenizer = build_tokenizer(arch)
    pieces = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w)) for w in words]
    before, after = TEMPLATES[arch]
    ids = torch.tensor([[IDS[t] for t in before] + [i for p in pieces for i in p] + [IDS[t] for t in after]])
    with torch.no_grad():
        if arch == "encoder-decoder" and side == "decoder":
            shifted = torch.cat([torch.tensor([[IDS["[PAD]"]]]), ids[:, :-1]], dim=1)
            states = model(input_ids=torch.tensor([[IDS["</s>"]]]), decoder_input_ids=shifted, output_hidden_states=True).decoder_hidden_states
        elif arch == "encoder-decoder":
            states = model.encoder(input_ids=ids, output_hidden_states=True).hidden_states
        else:
            states = model(input_ids=ids, output_hidden_states=True).hidden_states
    hidden = torch.stack(states)[:, 0].numpy()
    out, start = [], len(before)
    for p in pieces:
        span = hidden[:, start : start + len(p)]
        out.append({"last": span[:, -1], "first": span[:, 0], "mean": span.mean(axis=1)}[aggregation])
        start += len(p)
    return np.stack(out, axis=1)


def stacked(vectors: WordVectors) -> np.ndarray:
    return np.stack([np.asarray(vectors.layer(l)) for l in range(vectors.num_layers)])


CASES = [("encoder", "encoder"), ("encoder-decoder", "encoder"), ("encoder-decoder", "decoder"), ("decoder", "encoder")]


@pytest.mark.parametrize("aggregation", ["last", "first", "mean"])
@pytest.mark.parametrize(("arch", "side"), CASES)
def test_vectors_equal_direct_hidden_states(tiny_dirs: dict[str, Path], tmp_path: Path, arch: str, side: str, aggregation: str) -> None:
    reps = representations(tiny_dirs, arch, tmp_path)
    vectors = extract_word_vectors(
        reps, SENTENCES, language="xx", corpus_fingerprint="f", aggregation=aggregation, side=side, batch_size=2, dtype="float32"
    )
    assert vectors.num_layers == 3  # embedding output + 2 layers
    assert vectors.words == [w for s in SENTENCES for w in s]
    assert vectors.sentence_ids.tolist() == [i for i, s in enumerate(SENTENCES) for _ in s]
    assert vectors.word_positions.tolist() == [p for s in SENTENCES for p in range(len(s))]
    got = stacked(vectors)
    row = 0
    for words in SENTENCES:
        expected = reference(reps.model, arch, side, words, aggregation)
        np.testing.assert_allclose(got[:, row : row + len(words)], expected, rtol=1e-5, atol=1e-5)
        row += len(words)
    assert vectors.info["aggregation"] == aggregation and vectors.info["truncated_words"] == 0
    assert reps.timings["extract"] > 0


def test_aggregations_really_differ_and_context_is_recorded(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    """Guards the test above: with multi-subword words, last/first/mean are different vectors."""
    reps = representations(tiny_dirs, "encoder-decoder", tmp_path)
    runs = {a: stacked(extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="f", aggregation=a, side="decoder")) for a in ("last", "first", "mean")}
    assert not np.allclose(runs["last"], runs["first"]) and not np.allclose(runs["last"], runs["mean"])
    info = extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="f", side="decoder").info
    assert info["side"] == "decoder" and "seen tokens before i only" in info["context"]


def test_float16_storage_is_the_default(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "encoder", tmp_path)
    half = extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="f")
    full = extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="f", dtype="float32")
    assert half.layer(2).dtype == np.float16 and isinstance(half.layer(2), np.memmap)
    np.testing.assert_allclose(stacked(half), stacked(full), rtol=2e-3, atol=2e-3)
    assert half.directory != full.directory


def count_calls(model: torch.nn.Module, fail_at: int | None = None) -> list[int]:
    """Count forward calls of ``model``; raise on call number ``fail_at`` (a simulated crash)."""
    calls: list[int] = []

    def hook(module: torch.nn.Module, args: Any, kwargs: Any) -> None:
        calls.append(1)
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt("simulated crash")

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return calls


def test_second_call_is_a_cache_hit_without_model(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "encoder", tmp_path)
    calls = count_calls(reps.model)
    first = extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="f", batch_size=2)
    assert len(calls) == 1 + 3  # one probe, three batches
    again = extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="f", batch_size=2)
    assert len(calls) == 4
    np.testing.assert_array_equal(stacked(first), stacked(again))
    fresh = representations(tiny_dirs, "encoder", tmp_path)  # a new process: the model is never loaded
    extract_word_vectors(fresh, SENTENCES, language="xx", corpus_fingerprint="f", batch_size=16)
    assert "model" not in fresh.__dict__ and "tokenizer" not in fresh.__dict__
    other = extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="g", batch_size=2)
    assert len(calls) == 8 and other.directory != first.directory  # another fingerprint: recomputed


def test_interrupted_run_resumes_and_equals_an_uninterrupted_one(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    options: dict[str, Any] = dict(language="xx", corpus_fingerprint="f", batch_size=1, shard_size=2)
    crashed = representations(tiny_dirs, "encoder", tmp_path / "a")
    count_calls(crashed.model, fail_at=4)  # probe, shard 1 (two batches), then the crash in shard 2
    with pytest.raises(KeyboardInterrupt):
        extract_word_vectors(crashed, SENTENCES, **options)
    [partial] = (tmp_path / "a" / KIND).iterdir()  # only the partial directory, no entry
    assert partial.name.endswith(".partial")
    assert json.loads((partial / "progress.json").read_text())["done"] == 2
    entry = partial.with_name(partial.name.removesuffix(".partial"))

    resumed = representations(tiny_dirs, "encoder", tmp_path / "a")
    calls = count_calls(resumed.model)
    result = extract_word_vectors(resumed, SENTENCES, **options)
    assert len(calls) == 3  # sentences 3-5 only: no probe, shard 1 not redone
    assert result.directory == entry and not partial.exists()

    clean = extract_word_vectors(representations(tiny_dirs, "encoder", tmp_path / "b"), SENTENCES, **options)
    np.testing.assert_array_equal(stacked(result), stacked(clean))
    assert result.words == clean.words and result.info == clean.info


def test_an_exception_leaves_no_entry_behind(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "encoder", tmp_path)
    count_calls(reps.model, fail_at=2)  # the first batch after the probe
    with pytest.raises(KeyboardInterrupt):
        extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="f")
    complete = [p for p in (tmp_path / KIND).iterdir() if (p / "meta.json").exists()]
    assert complete == []
    assert all(p.name.endswith(".partial") for p in (tmp_path / KIND).iterdir())


def test_words_cut_by_max_length_are_dropped_and_counted(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "encoder", tmp_path)
    # [CLS] the z ##e ##b ##r ##a [SEP] with max_length 5: "zebra" is cut, "cat" is gone
    vectors = extract_word_vectors(reps, [["the", "zebra", "cat"], ["on", "mat"]], language="xx", corpus_fingerprint="f", max_length=5, dtype="float32")
    assert vectors.words == ["the", "on", "mat"]
    assert vectors.info["truncated_words"] == 2
    expected = reference(reps.model, "encoder", "encoder", ["on", "mat"], "last")
    np.testing.assert_allclose(stacked(vectors)[:, 1:], expected, rtol=1e-5, atol=1e-5)


class NoHiddenStates(torch.nn.Module):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, output_hidden_states: bool = False) -> Any:
        from transformers.modeling_outputs import BaseModelOutput

        return BaseModelOutput(last_hidden_state=torch.zeros(*input_ids.shape, 4))


class NoKeyword(torch.nn.Module):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*input_ids.shape, 4)


@pytest.mark.parametrize("module", [NoHiddenStates, NoKeyword])
def test_a_model_without_hidden_states_is_a_user_error(tiny_dirs: dict[str, Path], tmp_path: Path, module: Callable[[], torch.nn.Module]) -> None:
    source = TinySource(tiny_dirs["encoder"], "encoder")
    source.load_model = module  # type: ignore[method-assign]
    reps = Representations(source, Cache(tmp_path))
    with pytest.raises(UserError, match="hidden states"):
        extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="f")


def test_bad_options_are_user_errors(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "encoder", tmp_path)
    with pytest.raises(UserError, match="no decoder side"):
        extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="f", side="decoder")
    with pytest.raises(UserError, match="Unknown word aggregation"):
        extract_word_vectors(reps, SENTENCES, language="xx", corpus_fingerprint="f", aggregation="max")
    with pytest.raises(UserError, match="No sentences"):
        extract_word_vectors(reps, [], language="xx", corpus_fingerprint="f")
