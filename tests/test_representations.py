"""Phase timing of a model's representations: phases are exclusive and add up to wall time."""
from __future__ import annotations

import time

from xlingbench.inputs.cache import Cache
from xlingbench.inputs.representations import Representations


class _Source:
    model_id, revision, arch, name = "m", "r", "encoder", "m"


def test_nested_phases_do_not_double_count(tmp_path):
    inputs = Representations(_Source(), Cache(tmp_path))
    start = time.perf_counter()
    with inputs.timed("extract"):
        time.sleep(0.05)
        with inputs.timed("load"):
            time.sleep(0.1)
            with inputs.timed("load"):
                time.sleep(0.02)
        time.sleep(0.05)
    wall = time.perf_counter() - start
    assert 0.1 <= inputs.timings["extract"] < 0.12 + 0.05
    assert 0.12 <= inputs.timings["load"] < 0.12 + 0.05
    assert sum(inputs.timings.values()) <= wall


def test_cache_keys_carry_model_revision_and_dtype(tmp_path):
    inputs = Representations(_Source(), Cache(tmp_path))
    assert inputs.key(layer=3) == {"model_id": "m", "revision": "r", "model_dtype": "float32", "device_kind": "cpu", "layer": 3}
    inputs.device = "cuda:1"  # faked: only the key is read
    assert inputs.key(layer=3)["device_kind"] == "cuda"
