"""Concept patching throughput: the shared-prefix batch against one full forward pass per row.

Run: ``pytest benchmarks/bench_patching.py --benchmark-enable``. A tiny random decoder (width 128,
6 layers, 2,048-token vocabulary) and an 80-token prompt patched at token 70 from every state and
unpatched (7 rows), as the task runs one target prompt. ``patch_runs`` runs the 70-token prefix
once and the 7 continuations of 10 tokens as one batch on its key/value cache; the baseline runs
the whole prompt once per row with the same hooks. Reported in ``extra_info``: rows per second.
"""
from __future__ import annotations

import numpy as np
import pytest

from xlingbench.compute.patching import _overwrite, decoder_layers, patch_runs, read_states, state_hooks
from tests.tiny_models import tiny_decoder

PROMPT = [int(i) for i in np.random.default_rng(0).integers(1, 2048, size=80)]
WORD = 70


@pytest.fixture(scope="module")
def setup():
    model = tiny_decoder(vocab=2048, dim=128, layers=6, seed=0)
    states = read_states(model, [PROMPT], [WORD])
    starts = list(range(6)) + [7]
    return model, np.repeat(states, len(starts), axis=0), starts


def full_passes(model, latents: np.ndarray, starts: list[int]) -> np.ndarray:
    """The baseline: each row is one whole-prompt forward pass with its own patch."""
    import torch

    layers = decoder_layers(model)
    rows = []
    with torch.no_grad():
        for r, start in enumerate(starts):
            edit = _overwrite(latents[r: r + 1], [start], len(layers), torch.device("cpu"))
            with state_hooks(layers, lambda state, hidden: _at(edit, state, hidden)):
                rows.append(torch.softmax(model(input_ids=torch.tensor([PROMPT]), logits_to_keep=1).logits[0, -1], -1).numpy())
    return np.stack(rows)


def _at(edit, state, hidden):
    """Apply ``edit`` (which writes at the first position it sees) at the word's position of a whole prompt."""
    new = edit(state, hidden[:, WORD:])
    if new is None:
        return None
    hidden = hidden.clone()
    hidden[:, WORD:] = new
    return hidden


@pytest.mark.parametrize("method", ["shared_prefix_batch", "one_pass_per_row"])
def test_patching_throughput(benchmark, setup, method):
    model, latents, starts = setup
    if method == "shared_prefix_batch":
        probs = benchmark(lambda: patch_runs(model, PROMPT, WORD, latents, starts).probs)
    else:
        probs = benchmark(lambda: full_passes(model, latents, starts))
    np.testing.assert_allclose(probs, patch_runs(model, PROMPT, WORD, latents, starts).probs, atol=1e-5)
    benchmark.extra_info["rows_per_second"] = len(starts) / benchmark.stats.stats.mean
