"""Loading through the same path a Hub model takes: tokenizer files + one safetensors tensor."""
from __future__ import annotations

import numpy as np
import pytest

from xlingbench.core.errors import UserError
from xlingbench.inputs.registry import ModelSpec, resolve_model
from xlingbench.inputs.sources import PretrainedSource, open_source
from tests.tiny_models import encoder_model, publish, save_model, sentencepiece_tokenizer

PIECES = ["\u2581water", "\u2581Wasser", "\u2581eau", "\u2581fire", "\u2581Feuer", "\u2581feu"]


@pytest.fixture(scope="module")
def planted() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(4 + len(PIECES), 8)).astype(np.float32)


def _folder(tmp_path, planted, **save):
    return save_model(tmp_path / "model", sentencepiece_tokenizer(PIECES), encoder_model(planted), **save)


def test_hub_branch_resolves_to_commit_and_reads_embedding(tmp_path, planted, hub_cache, monkeypatch):
    commit = publish(_folder(tmp_path, planted), hub_cache, "tiny/single", "main")
    source = open_source(ModelSpec(name="tiny", hub_id="tiny/single"), "main")
    import transformers

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", lambda *a, **k: pytest.fail("model was loaded"))
    matrix = source.load_embedding_matrix()
    assert source.revision == commit
    assert matrix.shape == (len(planted) + 3, 8)
    np.testing.assert_array_equal(matrix[: len(planted)], planted)


def test_sharded_checkpoint_reads_the_one_shard(tmp_path, planted, hub_cache):
    folder = _folder(tmp_path, planted, max_shard_size="2KB")
    assert (folder / "model.safetensors.index.json").is_file()
    publish(folder, hub_cache, "tiny/sharded", "main")
    matrix = open_source(ModelSpec(name="tiny", hub_id="tiny/sharded"), "main").load_embedding_matrix()
    np.testing.assert_array_equal(matrix[: len(planted)], planted)


def test_local_folder_revision_is_a_content_hash(tmp_path, planted):
    folder = _folder(tmp_path, planted)
    spec = resolve_model(str(folder))
    first = open_source(spec).revision
    assert first.startswith("local-")
    save_model(folder, sentencepiece_tokenizer(PIECES), encoder_model(planted * 2))
    assert open_source(spec).revision != first


def test_arch_is_read_from_config(tmp_path, planted):
    assert open_source(resolve_model(str(_folder(tmp_path, planted)))).arch == "encoder"


def test_unknown_hub_model_is_one_clear_error():
    source = PretrainedSource(ModelSpec(name="x", hub_id="nobody/no-such-model"), "main")
    with pytest.raises(UserError, match="nobody/no-such-model"):
        source.load_tokenizer()


def test_unknown_registry_name_suggests_the_closest():
    with pytest.raises(UserError, match="did you mean 'xlm-roberta-base'"):
        resolve_model("xlm-roberta-bas")


def test_a_model_without_input_embeddings_is_refused():
    from xlingbench.inputs.sources import _input_embedding

    class NoEmbedding:
        def get_input_embeddings(self):
            return None

    with pytest.raises(UserError, match="m/x has no input embedding matrix"):
        _input_embedding(NoEmbedding(), "m/x")
