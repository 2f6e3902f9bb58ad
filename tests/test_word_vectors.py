"""Word-vector extraction against a direct ``output_hidden_states`` computation, caching, resume,
whole-sentence reading (Chinese), windows over long sentences, one extraction per language.

Tiny random models (BERT-type encoder, T5, GPT-2-type decoder) and a tiny WordPiece tokenizer
are built here and round-tripped through save_pretrained / from_pretrained. The reference
vectors are computed without offsets: each word is tokenised on its own (WordPiece splits on
whitespace first, so that is how the whole sentence reads too) and the spans are laid out by
hand around the special tokens. Chinese goes through a tiny XLM-R (tests/tiny_models.py) whose
pieces are planted so that a subword straddles two words and a word has no subword of its own.
"""
from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from tests.tiny_models import encoder_model, save_model, sentencepiece_tokenizer
from xlingbench.inputs.representations import ExtractionSettings
from xlingbench.core.errors import UserError
from xlingbench.inputs.cache import Cache
from xlingbench.inputs.parallel_data import load_parallel
from xlingbench.inputs.representations import Representations
from xlingbench.inputs.word_vectors import KIND, WordVectors

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


def build_model(arch: str, positions: int = 64) -> Any:
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model, T5Config, T5Model

    torch.manual_seed(0)
    if arch == "encoder":
        return BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, max_position_embeddings=positions))
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
    vectors = reps.extract_vectors(SENTENCES, language="xx", aggregation=aggregation, side=side, batch_size=2, dtype="float32")
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
    assert vectors.info["aggregation"] == aggregation and vectors.info["words_lost"] == 0 == vectors.info["words_without_subwords"]
    assert reps.timings["extract"] > 0


def test_aggregations_really_differ_and_context_is_recorded(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    """Guards the test above: with multi-subword words, last/first/mean are different vectors."""
    reps = representations(tiny_dirs, "encoder-decoder", tmp_path)
    runs = {a: stacked(reps.extract_vectors(SENTENCES, language="xx", aggregation=a, side="decoder")) for a in ("last", "first", "mean")}
    assert not np.allclose(runs["last"], runs["first"]) and not np.allclose(runs["last"], runs["mean"])
    info = reps.extract_vectors(SENTENCES, language="xx", side="decoder").info
    assert info["side"] == "decoder" and "seen tokens before i only" in info["context"]


def test_float16_storage_is_the_default(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "encoder", tmp_path)
    half = reps.extract_vectors(SENTENCES, language="xx")
    full = reps.extract_vectors(SENTENCES, language="xx", dtype="float32")
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
    first = reps.extract_vectors(SENTENCES, language="xx", batch_size=2)
    assert len(calls) == 1 + 3  # one probe, three batches
    again = reps.extract_vectors(SENTENCES, language="xx", batch_size=2)
    assert len(calls) == 4
    np.testing.assert_array_equal(stacked(first), stacked(again))
    fresh = representations(tiny_dirs, "encoder", tmp_path)  # a new process: the model is never loaded
    fresh.extract_vectors(SENTENCES, language="xx", batch_size=16)
    assert "model" not in fresh.__dict__ and "tokenizer" not in fresh.__dict__
    other = reps.extract_vectors(SENTENCES[:-1] + [["jumper", "cat"]], language="xx", batch_size=2)
    assert len(calls) == 8 and other.directory != first.directory  # another text: recomputed


def test_interrupted_run_resumes_and_equals_an_uninterrupted_one(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    options: dict[str, Any] = dict(language="xx", batch_size=1, shard_size=2)
    crashed = representations(tiny_dirs, "encoder", tmp_path / "a")
    count_calls(crashed.model, fail_at=4)  # probe, shard 1 (two batches), then the crash in shard 2
    with pytest.raises(KeyboardInterrupt):
        crashed.extract_vectors(SENTENCES, **options)
    [partial] = [p for p in (tmp_path / "a" / KIND).iterdir() if p.suffix != ".lock"]  # only the partial directory, no entry
    assert partial.name.endswith(".partial")
    assert json.loads((partial / "progress.json").read_text())["done"] == 2
    entry = partial.with_name(partial.name.removesuffix(".partial"))

    resumed = representations(tiny_dirs, "encoder", tmp_path / "a")
    calls = count_calls(resumed.model)
    result = resumed.extract_vectors(SENTENCES, **options)
    assert len(calls) == 3  # sentences 3-5 only: no probe, shard 1 not redone
    assert result.directory == entry and not partial.exists()

    clean = representations(tiny_dirs, "encoder", tmp_path / "b").extract_vectors(SENTENCES, **options)
    np.testing.assert_array_equal(stacked(result), stacked(clean))
    assert result.words == clean.words and result.info == clean.info


def test_an_exception_leaves_no_entry_behind(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "encoder", tmp_path)
    count_calls(reps.model, fail_at=2)  # the first batch after the probe
    with pytest.raises(KeyboardInterrupt):
        reps.extract_vectors(SENTENCES, language="xx")
    complete = [p for p in (tmp_path / KIND).iterdir() if (p / "meta.json").exists()]
    assert complete == []
    assert all(p.name.endswith((".partial", ".lock")) for p in (tmp_path / KIND).iterdir())


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
        reps.extract_vectors(SENTENCES, language="xx")


def test_bad_options_are_user_errors(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "encoder", tmp_path)
    with pytest.raises(UserError, match="no decoder side"):
        reps.extract_vectors(SENTENCES, language="xx", side="decoder")
    with pytest.raises(UserError, match="Unknown word aggregation"):
        reps.extract_vectors(SENTENCES, language="xx", aggregation="max")
    with pytest.raises(UserError, match="No sentences"):
        reps.extract_vectors([], language="xx")


def test_bad_sizes_are_user_errors_before_anything_loads(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "encoder", tmp_path)
    for option in ({"batch_size": -1}, {"batch_size": 0}, {"max_length": 0}, {"max_length": -5}, {"shard_size": 0}):
        with pytest.raises(UserError, match=next(iter(option))):
            reps.extract_vectors(SENTENCES, language="xx", **option)
    assert "model" not in reps.__dict__ and "tokenizer" not in reps.__dict__
    assert not (tmp_path / KIND).exists()
    with pytest.raises(UserError, match="special tokens"):  # [CLS] and [SEP] leave no room
        reps.extract_vectors(SENTENCES, language="xx", max_length=2)


def test_batch_size_does_not_change_the_vectors(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    runs = [stacked(representations(tiny_dirs, "decoder", tmp_path / str(b)).extract_vectors(SENTENCES, language="xx",
                                         batch_size=b, dtype="float32")) for b in (1, 3, 16)]
    for other in runs[1:]:
        np.testing.assert_allclose(other, runs[0], rtol=1e-5, atol=1e-5)


# --- whole sentences: Chinese through a tiny XLM-R --------------------------------------------

#: "我们喜欢自然语言。" reads <s> ▁我们 喜欢 自然语 言 。 </s>: "自然语" straddles 自然|语言;
#: "喜欢猫。" reads <s> ▁喜 欢猫 。 </s>: "欢猫" starts in 喜欢, so 猫 has no subword of its own
ZH_PIECES = ["▁我们", "我们", "喜欢", "自然语", "言", "。", "▁", "自", "然", "语", "▁喜", "欢猫", "猫", "欢", "喜"]
ZH_TEXTS = ["我们喜欢自然语言。", "喜欢猫。"]
ZH_SPANS = [[(0, 2), (2, 4), (4, 6), (6, 8), (8, 9)], [(0, 2), (2, 3), (3, 4)]]
ZH_WORDS = [[t[a:b] for a, b in spans] for t, spans in zip(ZH_TEXTS, ZH_SPANS)]
#: token positions (in the whole-sentence encoding) of each word that has some
ZH_TOKENS = [{0: [1], 1: [2], 2: [3], 3: [4], 4: [5]}, {0: [1, 2], 2: [3]}]


@pytest.fixture(scope="module")
def xlmr(tmp_path_factory: pytest.TempPathFactory) -> TinySource:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(4 + len(ZH_PIECES), 16)).astype(np.float32)
    folder = save_model(tmp_path_factory.mktemp("xlmr"), sentencepiece_tokenizer(ZH_PIECES), encoder_model(embeddings))
    return TinySource(folder, "encoder")


def input_ids_seen(model: torch.nn.Module) -> list[list[int]]:
    """Every sequence (padding removed) the model is run on."""
    seen: list[list[int]] = []

    def hook(module: torch.nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
        for ids, mask in zip(kwargs["input_ids"].tolist(), kwargs["attention_mask"].tolist()):
            seen.append([i for i, m in zip(ids, mask) if m])

    model.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


@pytest.mark.parametrize("aggregation", ["last", "first", "mean"])
def test_chinese_is_read_whole_and_mapped_by_offsets(xlmr: TinySource, tmp_path: Path, aggregation: str) -> None:
    reps = Representations(xlmr, Cache(tmp_path), device="cpu")
    seen = input_ids_seen(reps.model)
    vectors = reps.extract_vectors(ZH_WORDS, texts=ZH_TEXTS, spans=ZH_SPANS, language="zh", aggregation=aggregation, dtype="float32")
    whole = [reps.tokenizer(text)["input_ids"] for text in ZH_TEXTS]
    assert sorted(seen[1:]) == sorted(whole)  # after the probe: each sentence exactly as the tokenizer reads it
    word_by_word = reps.tokenizer(ZH_WORDS[0], is_split_into_words=True)["input_ids"]
    assert len(word_by_word) > len(whole[0])  # what reading word by word did: a ▁ before every word
    assert vectors.words == ["我们", "喜欢", "自然", "语言", "。", "喜欢", "。"]
    assert vectors.info["words_without_subwords"] == 1 and vectors.info["words_lost"] == 0
    got, row = stacked(vectors), 0
    for text, tokens in zip(ZH_TEXTS, ZH_TOKENS):
        with torch.no_grad():
            states = torch.stack(reps.model(**reps.tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states)[:, 0].numpy()
        for positions in tokens.values():
            span = states[:, positions]
            expected = {"last": span[:, -1], "first": span[:, 0], "mean": span.mean(axis=1)}[aggregation]
            np.testing.assert_allclose(got[:, row], expected, rtol=1e-5, atol=1e-5)
            row += 1


def test_texts_and_spans_must_hold_the_words(xlmr: TinySource, tmp_path: Path) -> None:
    reps = Representations(xlmr, Cache(tmp_path), device="cpu")
    with pytest.raises(ValueError, match="does not hold word"):
        reps.extract_vectors([["我们", "喜欢"]], texts=["我们喜欢"], spans=[[(0, 2), (1, 4)]], language="zh")
    with pytest.raises(ValueError, match="together"):
        reps.extract_vectors([["我们"]], texts=["我们"], language="zh")


# --- sentences longer than max_length: windows ------------------------------------------------


def test_a_700_subword_sentence_loses_no_word_and_windows_equal_direct_passes(tmp_path: Path) -> None:
    folder = tmp_path / "long"
    build_model("encoder", positions=512).save_pretrained(folder)
    build_tokenizer("encoder").save_pretrained(folder)
    reps = Representations(TinySource(folder, "encoder"), Cache(tmp_path / "cache"), device="cpu")
    words = ["the", "zebra", "cat", "jumper", "sat", "on", "water", "mat"] * 39  # 18 subwords each 8 words
    tokenizer = reps.tokenizer
    content = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    n = len(content)
    assert n == 702
    vectors = reps.extract_vectors([words], language="xx", max_length=512, dtype="float32")
    assert vectors.words == words and vectors.info["words_lost"] == 0 and vectors.info["windowed_sentences"] == 1
    # windows of 510 subwords every 255: [0, 510) and [255, 702); direct passes over each
    cls, sep = IDS["[CLS]"], IDS["[SEP]"]
    truncated = tokenizer(" ".join(words), truncation=True, max_length=512, return_tensors="pt")  # the unwindowed first window
    second = torch.tensor([[cls] + content[255:] + [sep]])
    with torch.no_grad():
        first_states = torch.stack(reps.model(**truncated, output_hidden_states=True).hidden_states)[:, 0].numpy()
        second_states = torch.stack(reps.model(input_ids=second, output_hidden_states=True).hidden_states)[:, 0].numpy()
    got, ends = stacked(vectors), np.cumsum([len(tokenizer.tokenize(w)) for w in words])
    from_first = 0
    for row, (end, size) in enumerate(zip(ends.tolist(), [len(tokenizer.tokenize(w)) for w in words])):
        first, last = end - size, end - 1  # the word's subwords in the sentence
        context_first = min(first, 510 - 1 - last) if last < 510 else -1
        context_second = min(first - 255, n - 1 - last) if first >= 255 else -1
        if context_first >= context_second:
            expected, from_first = first_states[:, 1 + last], from_first + 1
        else:
            expected = second_states[:, 1 + last - 255]
        np.testing.assert_allclose(got[:, row], expected, rtol=1e-5, atol=1e-5)
    assert 0 < from_first < len(words)


def test_a_word_in_no_window_whole_is_lost_and_counted(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    reps = representations(tiny_dirs, "encoder", tmp_path)
    # max_length 8: windows of 6 subwords every 3; "xylophone" is 9 subwords, in no window whole
    vectors = reps.extract_vectors([["the", "xylophone", "cat", "sat", "on", "a", "mat"]], language="xx", max_length=8, dtype="float32")
    assert vectors.words == ["the", "cat", "sat", "on", "a", "mat"] and vectors.info["words_lost"] == 1


# --- one extraction per language, shared by pairs and tasks ----------------------------------


def test_english_is_extracted_once_for_en_de_en_fr_and_colap(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    en = ["the cat sat", "a very long line of many words indeed", "on the mat", "water"]
    de = ["die katze sass", "kurz", "auf der matte", "wasser"]
    fr = ["le chat", "une ligne", "sur le tapis", "eau"]
    for lang, lines in {"en": en, "de": de, "fr": fr}.items():
        (tmp_path / f"c.{lang}.tok").write_text("\n".join(lines) + "\n", encoding="utf-8")
    reps = representations(tiny_dirs, "encoder", tmp_path / "cache")
    calls = count_calls(reps.model)
    settings = ExtractionSettings(aggregation="last", side="encoder", max_length=64, batch_size=16)

    def extract_vectors(reps, corpus, languages, settings):
        return {lang: reps.word_vectors(corpus, lang, settings) for lang in languages}

    en_de = load_parallel(str(tmp_path / "c"), ["en", "de"], max_words=5)  # drops line 2 (8 English words)
    assert en_de.kept == [0, 2, 3]
    pair = extract_vectors(reps, en_de, ["en", "de"], settings)
    assert len(calls) == 4  # a probe and one batch per language
    en_fr = load_parallel(str(tmp_path / "c"), ["en", "fr"])
    other = extract_vectors(reps, en_fr, ["en", "fr"], settings)
    assert len(calls) == 6  # French only
    colap = extract_vectors(reps, load_parallel(str(tmp_path / "c"), ["en", "de", "fr"]), ["en", "de", "fr"], settings)
    assert len(calls) == 6  # nothing new
    assert colap["en"].directory == other["en"].directory == pair["en"].directory
    # the pair's rows are its aligned sentences, numbered as in corpus.sentences
    assert pair["en"].words == [w for s in en_de.sentences["en"] for w in s]
    assert pair["en"].sentence_ids.tolist() == [0, 0, 0, 1, 1, 1, 2]
    keep = [i for i, s in enumerate(other["en"].sentence_ids.tolist()) if s != 1]
    np.testing.assert_array_equal(pair["en"].layer(2), other["en"].layer(2)[keep])


def test_a_layer_beyond_float16_is_widened_to_float32_and_keeps_its_values(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    """Issue 22: hidden states beyond 65,504 (float16's largest) are never stored as inf; the
    layer that holds them is rewritten as float32 when the first such batch comes, rows already
    written kept."""
    def planted(reps: Representations) -> Representations:
        model = reps.model
        seen: dict[str, bool] = {}
        model.register_forward_pre_hook(lambda m, a, k: seen.update(x=bool((k["input_ids"] == IDS["x"]).any())), with_kwargs=True)

        def scale(module: torch.nn.Module, args: Any, output: Any) -> Any:
            if not seen.get("x"):
                return output
            return (output[0] * 1e6, *output[1:]) if isinstance(output, tuple) else output * 1e6

        model.encoder.layer[1].register_forward_hook(scale)  # hidden_states[2], only for the sentence with "xylophone"
        return reps

    half = planted(representations(tiny_dirs, "encoder", tmp_path / "a")).extract_vectors(SENTENCES, language="xx", batch_size=1)
    full = planted(representations(tiny_dirs, "encoder", tmp_path / "b")).extract_vectors(SENTENCES, language="xx",
                                batch_size=1, dtype="float32")
    assert half.info["widened_layers"] == [2] and full.info["widened_layers"] == []
    assert [half.layer(l).dtype for l in range(3)] == [np.float16, np.float16, np.float32]
    assert half.info["nonfinite_values"] == 0 and np.isfinite(stacked(half)).all()
    assert float(np.abs(half.layer(2)).max()) > 65504
    big = np.asarray(half.sentence_ids) == 3
    np.testing.assert_array_equal(np.asarray(half.layer(2))[big], np.asarray(full.layer(2))[big])  # written as float32
    np.testing.assert_allclose(np.asarray(half.layer(2))[~big], np.asarray(full.layer(2))[~big], rtol=2e-3, atol=2e-3)  # copied float16 rows


@pytest.mark.parametrize(("arch", "last_layer"), [("encoder", "normed"), ("decoder", "normed"), ("decoder", "prenorm")])
def test_batches_side_by_side_give_the_vectors_of_one_thread(tiny_dirs: dict[str, Path], tmp_path: Path, arch: str,
                                                              last_layer: str) -> None:
    """With two torch threads two batches' forward passes run at once, one thread each (a pre-norm
    hook sees its own thread's pass only): every stored number is the one-thread run's, and the
    caller's thread count is left as it was."""
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            reps = representations(tiny_dirs, arch, tmp_path / str(threads))
            runs.append(stacked(reps.extract_vectors(SENTENCES, language="xx", batch_size=1, dtype="float32",
                                                     last_layer=last_layer)))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(runs[1], runs[0])
