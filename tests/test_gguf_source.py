"""The GGUF source on GGUF files written in the test (gguf's own writer): header, embedding, identity, cache.

The real files (Gemma 3 270M, SmolLM2) are exercised in tests/test_real_decoders.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xlingbench.core.errors import UserError
from xlingbench.inputs import gguf_source
from xlingbench.inputs.gguf_file import quantisation, read_header, read_matrix
from xlingbench.inputs.registry import ModelSpec, resolve_model

gguf = pytest.importorskip("gguf")


def write_gguf(path: Path, embedding: np.ndarray, qtype: str = "Q8_0", vocab: int = 3000) -> Path:
    """A GGUF file with metadata arrays (a vocabulary of ``vocab`` strings), ``embedding`` stored as
    ``qtype`` and a block matrix stored as Q4_0."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_token_list([f"tok{i}" for i in range(vocab)])
    writer.add_token_scores([float(-i) for i in range(vocab)])
    writer.add_uint32("test.answer", 42)
    kind = gguf.GGMLQuantizationType[qtype]
    writer.add_tensor("token_embd.weight", gguf.quantize(embedding, kind), raw_dtype=kind)
    block = np.random.default_rng(1).normal(size=(32, 64)).astype(np.float32)
    writer.add_tensor("blk.0.ffn_up.weight", gguf.quantize(block, gguf.GGMLQuantizationType.Q4_0), raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(64, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture()
def embedding() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(300, 64)).astype(np.float32)


@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_0", "F16", "F32"])
def test_embedding_equals_gguf_readers_dequantised_tensor(tmp_path: Path, embedding: np.ndarray, qtype: str, monkeypatch) -> None:
    path = write_gguf(tmp_path / "m.gguf", embedding, qtype)
    monkeypatch.setattr("xlingbench.inputs.gguf_file.READ_BLOCK_BYTES", 1000)  # many row blocks
    header = read_header(path)
    ours = read_matrix(header, "token_embd.weight")
    tensor = next(t for t in gguf.GGUFReader(str(path)).tensors if t.name == "token_embd.weight")
    reference = gguf.dequantize(tensor.data, tensor.tensor_type).reshape(embedding.shape)
    np.testing.assert_array_equal(ours, reference)
    assert ours.dtype == np.float32 and ours.shape == (300, 64)
    tolerance = {"Q8_0": 0.05, "Q4_0": 0.5, "F16": 1e-2, "F32": 0}[qtype]
    assert np.abs(ours - embedding).max() <= tolerance


def test_header_keeps_scalars_skips_arrays_and_names_the_quantisation(tmp_path: Path, embedding: np.ndarray) -> None:
    header = read_header(write_gguf(tmp_path / "m.gguf", embedding))
    assert header.metadata["test.answer"] == 42 and header.metadata["general.architecture"] == "llama"
    assert "tokenizer.ggml.tokens" not in header.metadata
    assert header.tensors["token_embd.weight"].shape == (300, 64)
    assert quantisation(header) == {"file_type": "Q8_0", "embedding": "Q8_0", "blocks": "Q4_0"}


@pytest.mark.parametrize("damage", ["magic", "truncated"])
def test_a_damaged_file_is_one_line_naming_it(tmp_path: Path, embedding: np.ndarray, damage: str) -> None:
    path = write_gguf(tmp_path / "m.gguf", embedding)
    data = path.read_bytes()
    path.write_bytes(b"NOPE" + data[4:] if damage == "magic" else data[:2000])
    with pytest.raises(UserError, match="m.gguf is not a readable GGUF file"):
        read_header(path)


def test_a_gguf_path_is_a_model_of_the_gguf_source(tmp_path: Path, embedding: np.ndarray) -> None:
    path = write_gguf(tmp_path / "m.gguf", embedding)
    spec = resolve_model(str(path))
    assert spec.source == "gguf" and spec.hub_id == str(path.resolve()) and spec.arch == "decoder"
    source = gguf_source.open_gguf(spec, None)
    assert source.revision.startswith("gguf-") and len(source.revision) == 17
    np.testing.assert_array_equal(source.load_embedding_matrix(), read_matrix(read_header(path), "token_embd.weight"))
    rounded = source.load_embedding_matrix(dtype="bfloat16")
    import torch

    np.testing.assert_array_equal(rounded, torch.from_numpy(source.load_embedding_matrix()).bfloat16().float().numpy())
    with pytest.raises(UserError, match="revision 'main' cannot be chosen"):
        gguf_source.open_gguf(spec, "main")


def test_a_file_that_is_not_the_pinned_one_is_refused(tmp_path: Path, embedding: np.ndarray) -> None:
    path = write_gguf(tmp_path / "m.gguf", embedding)
    spec = ModelSpec(name="pinned", hub_id="owner/model", revision="0" * 64, source="gguf", file=str(path))
    with pytest.raises(UserError, match="not the 000000000000... that the registry pins for pinned"):
        _ = gguf_source.GgufSource(spec, tmp_path).revision


def test_a_package_file_is_found_inside_the_package(tmp_path: Path, embedding: np.ndarray, monkeypatch) -> None:
    package = tmp_path / "site" / "fake_gguf_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    write_gguf(package / "weights.gguf", embedding)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    spec = ModelSpec(name="pkg", hub_id="owner/model", revision="x", pinned=False, source="gguf", file="package:fake_gguf_pkg/weights.gguf")
    assert gguf_source.locate(spec, tmp_path) == package / "weights.gguf"
    missing = ModelSpec(name="gone", hub_id="owner/model", source="gguf", file="package:no_such_pkg_xyz/w.gguf")
    with pytest.raises(UserError, match="comes from the package no_such_pkg_xyz, which is not installed"):
        gguf_source.locate(missing, tmp_path)


def test_conversion_runs_once_and_an_interrupted_one_leaves_no_done_marker(tmp_path: Path, embedding: np.ndarray, monkeypatch) -> None:
    source = gguf_source.GgufSource(resolve_model(str(write_gguf(tmp_path / "m.gguf", embedding))), tmp_path / "cache")
    calls: list[str] = []

    def fake_tokenizer(path: Path, out: Path) -> None:
        calls.append("tokenizer")
        if len(calls) == 1:
            (out / "tokenizer.json").write_text("{half")
            raise KeyboardInterrupt("killed mid-conversion")
        (out / "tokenizer.json").write_text("{}")

    monkeypatch.setattr(gguf_source, "_save_tokenizer", fake_tokenizer)
    with pytest.raises(KeyboardInterrupt):
        source._convert("tokenizer")
    assert not (source.folder / "tokenizer.done").exists() and not (source.folder / "tokenizer.json").exists()
    source._convert("tokenizer")
    source._convert("tokenizer")
    assert calls == ["tokenizer", "tokenizer"]
    assert json.loads((source.folder / "tokenizer.done").read_text())["sha256"] == source.sha256
    assert source.folder.parent == tmp_path / "cache" / "gguf" and not [p for p in source.folder.iterdir() if p.name.startswith(".")]


def test_a_file_transformers_cannot_convert_is_one_line(tmp_path: Path, embedding: np.ndarray) -> None:
    source = gguf_source.GgufSource(resolve_model(str(write_gguf(tmp_path / "m.gguf", embedding))), tmp_path / "cache")
    with pytest.raises(UserError, match="m.gguf"):
        source.load_model()
    assert not (source.folder / "weights.done").exists() and not (source.folder / "tokenizer.done").exists()
