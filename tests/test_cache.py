"""The array cache: keyed by what determines an entry, atomic, never pickled, locked, checked."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock, Timeout

from xlingbench.core.errors import UserError
from xlingbench.inputs.cache import Cache, cache_key, default_cache_dir


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
    assert [p.name for p in (tmp_path / "k").iterdir()] == [f"{cache_key({'p': 1})}.lock"]


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


# --- Lose nothing: concurrent and killed runs, poisoned entries, location -------------------

ROOT = Path(__file__).resolve().parents[1]

# One worker: wait for the go file, then get_or_compute an entry whose computation is slow
# (so two workers overlap) and logs each run to `calls`; save what it got to `out`.
_RACER = """
import sys, time
from pathlib import Path
import numpy as np
from xlingbench.inputs.cache import Cache
root, calls, go, out = map(Path, sys.argv[1:])
cache = Cache(root)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
def compute():
    with open(calls, "a") as f:
        f.write("computed\\n")
    time.sleep(0.5)
    return {"x": np.arange(1.0, 7.0).reshape(2, 3)}
np.save(out, cache.get_or_compute("k", {"p": 1}, compute)["x"])
"""

# A worker killed mid-staging: takes the entry's staging (and so its lock), writes half, then hangs.
_VICTIM = """
import sys, time
from pathlib import Path
import numpy as np
from xlingbench.inputs.cache import Cache
with Cache(Path(sys.argv[1])).staging("k", {"p": 1}) as tmp:
    np.save(tmp / "x.npy", np.ones(3))
    print(tmp, flush=True)
    time.sleep(600)
"""


def _python(script: str, *args: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _staging_left(kind_dir: Path) -> list[str]:
    return [p.name for p in kind_dir.iterdir() if p.name.startswith(".")]


def test_two_processes_computing_one_entry_compute_it_once(tmp_path):
    calls, go = tmp_path / "calls", tmp_path / "go"
    racers = [_python(_RACER, tmp_path / "cache", calls, go, tmp_path / f"out{i}.npy") for i in range(2)]
    for racer in racers:
        assert racer.stdout.readline().strip() == "ready"
    go.touch()
    assert [racer.wait(timeout=60) for racer in racers] == [0, 0]
    assert calls.read_text() == "computed\n"
    waited = ["waiting for another xlingbench process computing the same k entry" in r.stderr.read() for r in racers]
    assert sorted(waited) == [False, True]  # the one that waited said so, once
    first, second = np.load(tmp_path / "out0.npy"), np.load(tmp_path / "out1.npy")
    np.testing.assert_array_equal(first, np.arange(1.0, 7.0).reshape(2, 3))
    np.testing.assert_array_equal(first, second)
    kind_dir = tmp_path / "cache" / "k"
    key = cache_key({"p": 1})
    assert sorted(p.name for p in kind_dir.iterdir()) == [key, f"{key}.lock"]
    assert Cache(tmp_path / "cache").is_complete("k", {"p": 1})


def test_a_killed_holder_leaves_a_lock_the_next_run_takes_over_and_its_staging_removed(tmp_path):
    root = tmp_path / "cache"
    victim = _python(_VICTIM, root)
    staging = Path(victim.stdout.readline().strip())
    lock_file = root / "k" / f"{cache_key({'p': 1})}.lock"
    with pytest.raises(Timeout):  # the victim really holds the lock
        FileLock(lock_file).acquire(timeout=0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert (staging / "x.npy").is_file()  # the orphan is there until someone takes the lock
    FileLock(lock_file).acquire(timeout=10).lock.release()  # the OS released the dead holder's lock

    calls = []
    found = Cache(root).get_or_compute("k", {"p": 1}, lambda: calls.append(1) or {"x": np.full(3, 2.0)})
    np.testing.assert_array_equal(found["x"], np.full(3, 2.0))
    assert calls == [1]
    assert not staging.exists() and _staging_left(root / "k") == []


def test_a_streamed_entry_is_built_and_published_under_its_lock(tmp_path):
    """The word-vector pattern: lock, build ``<entry>.partial``, publish (reentrant), keep partial on resume."""
    cache = Cache(tmp_path)
    with cache.lock("wv", {"p": 1}) as entry:
        partial = Path(f"{entry}.partial")
        partial.mkdir()
        np.save(partial / "layer_000.npy", np.ones((2, 3), dtype=np.float16))
        with cache.lock("wv", {"p": 1}):  # reentrant: no deadlock, and the partial is not an orphan
            assert partial.is_dir()
        assert cache.publish(partial, "wv", {"p": 1}) == entry
    assert cache.is_complete("wv", {"p": 1}) and not partial.exists()


def test_a_process_waiting_for_the_lock_loads_instead_of_recomputing(tmp_path):
    cache = Cache(tmp_path)
    with cache.lock("k", {"p": 1}):  # another holder published while we waited
        cache.save("k", {"p": 1}, {"x": np.ones(2)})
        with cache.lock("k", {"p": 1}):
            found = cache.get_or_compute("k", {"p": 1}, lambda: pytest.fail("recomputed"))
    np.testing.assert_array_equal(found["x"], np.ones(2))


@pytest.mark.parametrize("array, problem", [
    (np.zeros((4, 3), dtype=np.float32), "all zeros"),
    (np.array([[1.0, np.nan], [np.inf, 2.0]]), "2 non-finite"),
])
def test_poisoned_arrays_are_refused_and_nothing_is_published(tmp_path, array, problem):
    cache = Cache(tmp_path)
    with pytest.raises(UserError, match=f"'emb'.*'E' .*{problem}"):
        cache.get_or_compute("emb", {"p": 1}, lambda: {"E": array, "ok": np.ones(4)})
    with pytest.raises(UserError, match=problem):
        cache.save("emb", {"p": 1}, {"E": array})
    assert cache.load("emb", {"p": 1}) is None
    assert [p.name for p in (tmp_path / "emb").iterdir()] == [f"{cache_key({'p': 1})}.lock"]


def test_wrong_row_counts_are_refused_and_custom_validators_replace_the_default(tmp_path):
    cache = Cache(tmp_path)
    with pytest.raises(UserError, match=r"'ids' has shape \(3,\), expected 4 rows"):
        cache.save("k", {"p": 1}, {"E": np.ones((4, 2)), "ids": np.arange(3)}, rows=4)
    assert cache.load("k", {"p": 1}) is None
    cache.save("k", {"p": 1}, {"E": np.ones((4, 2)), "ids": np.arange(4)}, rows=4)
    cache.save("k", {"p": 2}, {"counts": np.zeros(3, dtype=np.int64)})  # integer zeros are data, not poison
    cache.save("k", {"p": 3}, {"mask": np.zeros(3)}, validate=None)
    with pytest.raises(UserError, match="too short"):
        cache.save("k", {"p": 4}, {"x": np.ones(1)}, validate=lambda a: "too short" if len(a["x"]) < 2 else None)
    assert [cache.is_complete("k", {"p": p}) for p in (1, 2, 3, 4)] == [True, True, True, False]


def test_publish_checks_the_built_files_chunk_by_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr("xlingbench.inputs.cache._CHECK_BYTES", 16)  # 2 float64 values a chunk
    cache = Cache(tmp_path / "cache")
    late = np.zeros((5, 3))
    late[-1, -1] = 1.0  # the only non-zero value, in the last chunk
    built = tmp_path / "good"
    built.mkdir()
    np.save(built / "x.npy", np.asfortranarray(late))
    cache.publish(built, "k", {"p": 1})
    np.testing.assert_array_equal(cache.load("k", {"p": 1})["x"], late)

    late[-1, -1] = np.nan
    bad = tmp_path / "bad"
    bad.mkdir()
    np.save(bad / "x.npy", late)
    with pytest.raises(UserError, match="'k' entry: array 'x' has 1 non-finite"):
        cache.publish(bad, "k", {"p": 2})
    assert not cache.is_complete("k", {"p": 2}) and (bad / "x.npy").is_file()


def test_default_location_is_the_user_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XLINGBENCH_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "mine"
    assert Cache().root == tmp_path / "mine" and (tmp_path / "mine").is_dir()
    monkeypatch.delenv("XLINGBENCH_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "xlingbench"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "xlingbench"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "xlingbench"


def test_a_cache_dir_that_is_a_file_or_under_one_is_a_user_error(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(UserError, match=f"{afile} is a file") as err:
        Cache(afile)
    assert "--cache-dir" in err.value.one_line() and "\n" not in err.value.one_line()
    with pytest.raises(UserError, match=f"{afile / 'sub'} cannot be created"):
        Cache(afile / "sub")


def test_a_read_only_cache_dir_is_a_user_error(tmp_path, unprivileged):
    """In a subprocess that honours mode bits even as root (CI runs as root; see ``unprivileged``)."""
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    check = ("import sys\nfrom xlingbench.core.errors import UserError\nfrom xlingbench.inputs.cache import Cache\n"
             "try:\n    Cache(sys.argv[1])\nexcept UserError as err:\n    print(err.one_line())")
    done = subprocess.run([sys.executable, "-c", check, str(folder)], capture_output=True, text=True, check=False,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, **unprivileged)
    assert "not writable" in done.stdout, done.stdout + done.stderr
