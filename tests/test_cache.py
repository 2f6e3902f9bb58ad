"""The array cache: keyed by what determines an entry, atomic, never pickled."""
from __future__ import annotations

import numpy as np
import pytest

from xlingbench.inputs.cache import Cache, cache_key


def test_round_trip_and_key_order_independence(tmp_path):
    cache = Cache(tmp_path)
    cache.save("emb", {"model": "m", "revision": "r"}, {"E": np.arange(6.0).reshape(2, 3)})
    found = cache.load("emb", {"revision": "r", "model": "m"})
    np.testing.assert_array_equal(found["E"], np.arange(6.0).reshape(2, 3))
    assert cache_key({"a": 1, "b": 2}) == cache_key({"b": 2, "a": 1})
    assert cache.load("emb", {"model": "m", "revision": "other"}) is None


def test_compute_runs_once(tmp_path):
    calls = []
    cache = Cache(tmp_path)
    compute = lambda: calls.append(1) or {"x": np.ones(3)}  # noqa: E731
    cache.get_or_compute("k", {"p": 1}, compute)
    cache.get_or_compute("k", {"p": 1}, compute)
    assert calls == [1]


def test_an_interrupted_write_leaves_no_entry(tmp_path):
    cache = Cache(tmp_path)

    def crash():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with cache.staging("k", {"p": 1}) as tmp:
            np.save(tmp / "x.npy", np.ones(3))
            crash()
    assert cache.load("k", {"p": 1}) is None
    assert list((tmp_path / "k").iterdir()) == []


def test_object_arrays_are_refused(tmp_path):
    with pytest.raises(ValueError):
        Cache(tmp_path).save("k", {"p": 1}, {"x": np.array([{"a": 1}], dtype=object)})


def test_write_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    from xlingbench.inputs.cache import write_atomic

    target = tmp_path / "sub" / "f.json"
    write_atomic(target, "old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]
