"""Residual-stream patching on tiny decoders: planted answers, checked against plain forward passes."""
from __future__ import annotations

import numpy as np
import pytest

from xlingbench.compute.patching import answer_ids, bootstrap_interval, decoder_layers, mass, patch_runs, read_states
from tests.tiny_models import reading_decoder, tiny_decoder

PROMPT = [5, 9, 3, 7, 11, 4, 8, 2]
WORD = 3  # the patched position


def sharp_decoder(seed: int, layers: int = 3):
    """A random tiny decoder whose head is scaled up, so that its outputs differ visibly between prompts."""
    import torch

    model = tiny_decoder(vocab=16, layers=layers, seed=seed)
    with torch.no_grad():
        model.lm_head.weight.mul_(40)
    return model


def full_probs(model, ids: list[int]) -> np.ndarray:
    """The next-token distribution of one plain forward pass, no hooks, no cache (the independent check)."""
    import torch

    with torch.no_grad():
        return torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1).numpy()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_patching_a_prompt_with_its_own_states_changes_nothing(dtype):
    import torch

    model = sharp_decoder(seed=2).to(getattr(torch, dtype))
    states = read_states(model, [PROMPT], [WORD])
    layers = len(decoder_layers(model))
    assert states.shape == (1, layers + 1, 16)
    starts = list(range(layers)) + [layers + 1]  # every start, then the unpatched run
    out = patch_runs(model, PROMPT, WORD, np.repeat(states, len(starts), axis=0), starts)
    tolerance = 1e-5 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(out.probs, np.repeat(out.probs[-1:], len(starts), axis=0), atol=tolerance)
    np.testing.assert_allclose(out.probs[-1], full_probs(model, PROMPT), atol=tolerance)


def test_patching_every_state_with_a_swapped_word_gives_the_source_prompts_output():
    model = sharp_decoder(seed=4)
    source = PROMPT.copy()
    source[WORD] = 13  # token for token the target prompt, another word
    states = read_states(model, [source], [WORD])
    out = patch_runs(model, PROMPT, WORD, states, [0])
    np.testing.assert_allclose(out.probs[0], full_probs(model, source), atol=1e-5)
    assert np.abs(full_probs(model, source) - full_probs(model, PROMPT)).max() > 0.05  # the swap matters at all


def test_batched_reading_with_padding_equals_one_prompt_at_a_time():
    model = tiny_decoder(vocab=16, layers=2, seed=5)
    prompts = [PROMPT, PROMPT[:5], [1, 2, 3]]
    positions = [WORD, 4, 2]
    together = read_states(model, prompts, positions, batch_size=3)
    alone = np.concatenate([read_states(model, [p], [i]) for p, i in zip(prompts, positions)])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_a_planted_concept_moves_the_answer_only_where_it_is_read():
    concepts, read_at, layers = 4, 2, 5
    model = reading_decoder(concepts=concepts, fillers=6, layers=layers, read_at=read_at)
    target = [4, 5, 6, 1, 7, 8]  # fillers, the target word (concept 1), fillers
    source = [9, 4, 5, 3]  # another prompt whose word (concept 3) is its last token
    states = read_states(model, [source], [3])
    starts = list(range(layers)) + [layers + 1]
    out = patch_runs(model, target, 3, np.repeat(states, len(starts), axis=0), starts, generate=2)
    success, kept = mass(out.probs, [3]), mass(out.probs, [1])
    assert kept[-1] > 0.9 and success[-1] < 0.05  # unpatched: the target's own concept
    assert all(success[j] > 0.9 for j in range(read_at + 1))  # patched up to the reading layer: the source concept
    np.testing.assert_allclose(out.probs[read_at + 1: layers], np.repeat(out.probs[-1:], layers - read_at - 1, axis=0), atol=1e-6)
    assert [row[0] for row in out.generated] == [3] * (read_at + 1) + [1] * (layers - read_at)


def test_greedy_continuation_equals_step_by_step_forward_passes():
    model = sharp_decoder(seed=6, layers=2)
    out = patch_runs(model, PROMPT, WORD, None, [9], generate=3)
    ids = list(PROMPT)
    for _ in range(3):
        ids.append(int(full_probs(model, ids).argmax()))
    assert out.generated == [ids[len(PROMPT):]]


def test_answer_ids_are_every_prefix_with_or_without_the_word_start_marker():
    by_surface = {"B": [1], "Bl": [2, 7], "Blu": [3], "Blume": [4], "lume": [5], "X": [6]}
    assert answer_ids("Blume", by_surface, first_ids=[9]) == [1, 2, 3, 4, 7, 9]
    assert mass(np.array([[0.1, 0.2, 0.7]]), [0, 2]) == pytest.approx([0.8])


def test_bad_patch_positions_and_empty_bootstraps_are_refused():
    model = tiny_decoder(vocab=16, layers=2)
    with pytest.raises(ValueError, match="patched position"):
        patch_runs(model, PROMPT, 0, None, [9])
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_interval(np.array([]), seed=0)
    low, high = bootstrap_interval(np.array([0.2, 0.4, 0.6, 0.8]), seed=0)
    assert 0.2 <= low < 0.5 < high <= 0.8
    assert bootstrap_interval(np.array([0.2, 0.4, 0.6, 0.8]), seed=0) == (low, high)
