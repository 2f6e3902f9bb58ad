"""``last_layer="prenorm"``: the last layer before the model's final norm, against a manual computation.

transformers returns the last hidden state after the final norm (``model.norm`` of Llama and
Gemma, ``ln_f`` of GPT-2, ``final_layer_norm`` of T5) and every other one before it. The
reference here is the last decoder block's own output, read by a forward hook on that block:
the pre-norm vectors must equal it, and the default vectors must equal the final norm of it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.test_word_vectors import IDS, VOCAB, TinySource, build_model, build_tokenizer
from xlingbench.core.errors import UserError
from xlingbench.inputs.cache import Cache
from xlingbench.inputs.representations import Representations

#: words that are one token each, so word j of a sentence is position j + 1 (after <s>)
WORDS = [["the", "cat", "sat"], ["mat", "on", "the", "cat"], ["sat", "on"]]


def llama() -> Any:
    from tests.tiny_models import tiny_decoder

    return tiny_decoder(len(VOCAB), layers=3, seed=4)


def gemma() -> Any:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(5)
    config = Gemma3TextConfig(vocab_size=len(VOCAB), hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=8, pad_token_id=IDS["[PAD]"],
                              bos_token_id=IDS["<s>"], eos_token_id=IDS["</s>"])
    return Gemma3ForCausalLM(config).eval()


def saved(model: Any, folder: Path, arch: str = "decoder") -> TinySource:
    model.save_pretrained(folder)
    build_tokenizer(arch).save_pretrained(folder)
    return TinySource(folder, arch)


def last_block_outputs(model: Any, words: list[str]) -> torch.Tensor:
    """(positions, d): the output of the last decoder block for ``<s> words``, by a hook on that block."""
    seen: list[torch.Tensor] = []
    block = model.model.layers[-1]
    handle = block.register_forward_hook(lambda module, args, out: seen.append(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        model(input_ids=torch.tensor([[IDS["<s>"]] + [IDS[w] for w in words]]))
    handle.remove()
    return seen[0][0]


@pytest.mark.parametrize("build", [llama, gemma], ids=["llama", "gemma3"])
def test_prenorm_last_layer_is_the_last_block_output(build: Any, tmp_path: Path) -> None:
    model = build()
    reps = Representations(saved(model, tmp_path / "model"), Cache(tmp_path / "cache"), device="cpu")
    normed = reps.extract_vectors(WORDS, language="xx", dtype="float32", batch_size=2)
    prenorm = reps.extract_vectors(WORDS, language="xx", dtype="float32", batch_size=2, last_layer="prenorm")
    last = normed.num_layers - 1
    assert last == 3 and prenorm.directory != normed.directory and prenorm.info["last_layer"] == "prenorm"
    row = 0
    for words in WORDS:
        block = last_block_outputs(model, words)
        with torch.no_grad():
            final = model.model.norm(block)
        for j in range(len(words)):
            np.testing.assert_allclose(prenorm.layer(last)[row], block[j + 1].numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(normed.layer(last)[row], final[j + 1].numpy(), rtol=1e-4, atol=1e-5)
            row += 1
    assert not np.allclose(prenorm.layer(last), normed.layer(last), atol=1e-2)  # the option changes something
    for layer in range(last):  # the other layers are the same states
        np.testing.assert_array_equal(prenorm.layer(layer), normed.layer(layer))


def test_prenorm_of_a_gpt2_and_a_t5_encoder_equals_their_final_norm_input(tmp_path: Path) -> None:
    for arch, norm_of in (("decoder", lambda m: m.ln_f), ("encoder-decoder", lambda m: m.get_encoder().final_layer_norm)):
        model = build_model(arch).eval()
        reps = Representations(saved(model, tmp_path / arch, arch), Cache(tmp_path / f"cache-{arch}"), device="cpu")
        normed = reps.extract_vectors(WORDS, language="xx", dtype="float32")
        prenorm = reps.extract_vectors(WORDS, language="xx", dtype="float32", last_layer="prenorm")
        last = normed.num_layers - 1
        with torch.no_grad():
            renormed = norm_of(model)(torch.from_numpy(np.array(prenorm.layer(last)))).numpy()
        np.testing.assert_allclose(renormed, normed.layer(last), rtol=1e-4, atol=1e-5)
        assert not np.allclose(prenorm.layer(last), normed.layer(last), atol=1e-2)


def test_a_model_without_a_final_norm_is_refused_in_one_line(tmp_path: Path) -> None:
    reps = Representations(saved(build_model("encoder"), tmp_path / "bert", "encoder"), Cache(tmp_path / "cache"), device="cpu")
    with pytest.raises(UserError, match="BertModel has no final norm") as err:
        reps.extract_vectors(WORDS, language="xx", last_layer="prenorm")
    assert "last_layer=normed" in err.value.fix
    with pytest.raises(UserError, match="Unknown last_layer"):
        reps.extract_vectors(WORDS, language="xx", last_layer="middle")
