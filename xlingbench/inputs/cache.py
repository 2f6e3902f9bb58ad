"""An on-disk cache of arrays, keyed by everything that determines them, written atomically.

Why: reading a 250k x 4096 embedding matrix or extracting word vectors for 13 layers is the
slow part of a run; a second run of the same model and revision must not redo it. An entry is
a directory of ``.npy`` files plus ``meta.json``. It is built in a temporary sibling directory
and moved into place with one ``os.replace``, so an interrupted run never leaves a half-written
entry: the entry is either complete or absent. Arrays are loaded with ``allow_pickle=False``.

Lose nothing, with several runs at once: an entry is computed under a per-entry OS file lock
(``<kind>/<key>.lock``), so a second process waits and then loads what the first published
instead of computing it again or deleting the first one's staging. The OS releases the lock
when its holder dies, even by SIGKILL, and the next holder removes the dead one's staging.
Before publishing, the arrays are checked (finite, not all zero) so that a run that silently
wrote nothing cannot leave a poisoned entry that every later run would trust.

A full disk is the user's to fix: an entry that does not fit the free space is refused before
it is written, and "no space left on device" while writing is one line naming the cache
directory; the staging directory is removed either way, so nothing partial is left.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
from filelock import FileLock, Timeout

from xlingbench.core.errors import UserError
from xlingbench.core.identity import CACHE_KEY_LENGTH, digest

_META = "meta.json"
#: how many bytes of an array :func:`check_floats` reads at once (a memory-mapped entry never loads whole)
_CHECK_BYTES = 64 << 20
_LOG = logging.getLogger(__name__)

#: A check of an entry's arrays (name -> array, possibly memory-mapped): what is wrong, or None.
Validator = Callable[[Mapping[str, np.ndarray]], str | None]
#: of a chunk of stored values: how many are not finite, and whether any is non-zero
ChunkCounts = Callable[[np.ndarray], tuple[int, bool]]


def default_cache_dir() -> Path:
    """``$XLINGBENCH_CACHE``, else ``$XDG_CACHE_HOME/xlingbench``, else ``~/.cache/xlingbench``.

    Why a user-wide folder: a cache under the working folder made every checkout recompute the
    same embeddings. Read at call time, not import time, so the environment of the run counts.
    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec requires.
    """
    explicit = os.environ.get("XLINGBENCH_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "xlingbench"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write one file so that a crash leaves the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp.name, path)


def cache_key(parts: Mapping[str, Any]) -> str:
    """A stable hash of the parts that determine an entry (model id, revision, parameters...):
    the one digest of :mod:`xlingbench.core.identity`, which refuses a value that is not JSON."""
    return digest(parts, CACHE_KEY_LENGTH)


def check_floats(arrays: Mapping[str, np.ndarray], counts: ChunkCounts | None = None) -> str | None:
    """The default check: every floating array is finite and not all zero.

    Why: an extraction that ran no batch (``--set batch_size=-1``) leaves its preallocated
    zeros, and a half-precision overflow leaves NaN; published, either would be trusted by
    every later run. Reads in chunks of ``_CHECK_BYTES`` so a memory-mapped entry stays on disk.
    ``counts`` reads values stored in another form (bfloat16 as its ``uint16`` bits): then every
    array is checked through it, whatever its numpy dtype.
    """
    for name, array in arrays.items():
        if array.size and (counts is not None or np.issubdtype(array.dtype, np.inexact)):
            problem = _float_problem(array, counts or _float_counts)
            if problem:
                return f"array {name!r} {problem}"
    return None


def _float_counts(chunk: np.ndarray) -> tuple[int, bool]:
    """How many of a chunk of floats are not finite, and whether any is non-zero."""
    return int(chunk.size - np.count_nonzero(np.isfinite(chunk))), bool(chunk.any())


def _float_problem(array: np.ndarray, counts: ChunkCounts) -> str | None:
    """What is wrong with one non-empty array of values, read chunk by chunk through ``counts``."""
    flat = array.reshape(-1, order="A")  # a view for C- or Fortran-ordered files: nothing is loaded
    step = max(1, _CHECK_BYTES // flat.itemsize)
    nonfinite, nonzero = 0, False
    for start in range(0, flat.size, step):
        bad, any_nonzero = counts(np.asarray(flat[start : start + step]))
        nonfinite, nonzero = nonfinite + bad, nonzero or any_nonzero
    if nonfinite:
        return f"has {nonfinite} non-finite values (NaN or infinity) of {flat.size}"
    return None if nonzero else f"is all zeros ({flat.size} values)"


def _problem(arrays: Mapping[str, np.ndarray], validate: Validator | None, rows: int | None) -> str | None:
    """The first thing wrong with ``arrays``: ``validate``'s verdict, then the row count."""
    problem = validate(arrays) if validate is not None else None
    return problem or (_row_problem(arrays, rows) if rows is not None else None)


def _row_problem(arrays: Mapping[str, np.ndarray], rows: int) -> str | None:
    """Whether every array has ``rows`` rows (the caller knows how many words/tokens it asked for)."""
    for name, array in arrays.items():
        if array.ndim == 0 or array.shape[0] != rows:
            return f"array {name!r} has shape {array.shape}, expected {rows} rows"
    return None


class Cache:
    """Atomic, locked array cache rooted at one directory; ``kind`` separates families of entries."""

    def __init__(self, root: Path | str | None = None) -> None:
        """Use ``root`` (default :func:`default_cache_dir`), created now so a bad path fails
        before anything slow is computed rather than after."""
        self.root = _usable_dir(Path(root).expanduser() if root is not None else default_cache_dir())

    def entry_dir(self, kind: str, parts: Mapping[str, Any]) -> Path:
        """Where the complete entry for ``parts`` lives (it may not exist yet)."""
        return self.root / kind / cache_key(parts)

    def is_complete(self, kind: str, parts: Mapping[str, Any]) -> bool:
        """Whether a complete entry for ``parts`` exists."""
        return (self.entry_dir(kind, parts) / _META).is_file()

    def entries(self, kind: str) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every complete entry of ``kind`` with the key parts it was published under, in name order.

        Why: an entry that holds more than a key asks for (word vectors of more layers) can answer
        it, and only the parts recorded at publication say which entries those are. An entry whose
        ``meta.json`` cannot be read is skipped, never trusted.
        """
        for meta in sorted((self.root / kind).glob(f"*/{_META}")):
            try:
                parts = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(parts, dict):
                yield meta.parent, parts

    def load(self, kind: str, parts: Mapping[str, Any], mmap: bool = False) -> dict[str, np.ndarray] | None:
        """The arrays of a complete entry, or None when there is none."""
        if not self.is_complete(kind, parts):
            return None
        return _arrays(self.entry_dir(kind, parts), "r" if mmap else None)

    @contextmanager
    def lock(self, kind: str, parts: Mapping[str, Any]) -> Iterator[Path]:
        """Hold the entry's lock for the block; yields the entry directory.

        Take it around anything that builds the entry (a streamed ``<entry>.partial`` included),
        then re-check :meth:`is_complete` inside: another process may have published meanwhile.
        Reentrant in one thread (:meth:`publish` inside the block does not deadlock). The OS drops
        the lock when its holder dies, so a killed run never blocks the next one; on first
        acquisition dead holders' staging directories of this kind are removed (:func:`_remove_orphans`).
        """
        final = self.entry_dir(kind, parts)
        final.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(final.parent / f"{final.name}.lock", is_singleton=True)
        if lock.is_locked:  # this thread holds it already: its staging is no orphan
            yield final
            return
        _acquire_waiting(lock, kind)
        try:
            _remove_orphans(final)
            yield final
        finally:
            lock.release()

    def save(
        self, kind: str, parts: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
        *, validate: Validator | None = check_floats, rows: int | None = None,
    ) -> Path:
        """Check ``arrays`` (``validate``, then ``rows`` rows each) and write them as one entry.

        A failed check raises :class:`UserError` before anything is written.
        """
        arrays = {name: np.asarray(array) for name, array in arrays.items()}
        _refuse(kind, _problem(arrays, validate, rows))
        require_space(self.root, sum(array.nbytes for array in arrays.values()))
        with self.staging(kind, parts, validate=None) as tmp:  # checked above, in memory
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array, allow_pickle=False)
        return self.entry_dir(kind, parts)

    def get_or_compute(
        self, kind: str, parts: Mapping[str, Any], compute: Callable[[], Mapping[str, np.ndarray]],
        *, validate: Validator | None = check_floats, rows: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Load the entry for ``parts``; compute, check and store it first when absent.

        Double-checked: a process that waited for the lock loads what the holder published.
        """
        found = self.load(kind, parts)
        if found is not None:
            return found
        with self.lock(kind, parts):
            if not self.is_complete(kind, parts):
                self.save(kind, parts, compute(), validate=validate, rows=rows)
        return self.load(kind, parts)  # type: ignore[return-value]

    def publish(
        self, built: Path, kind: str, parts: Mapping[str, Any], *, validate: Validator | None = check_floats
    ) -> Path:
        """Make the finished directory ``built`` the entry for ``parts`` with one ``os.replace``.

        For entries built in pieces outside :meth:`staging` (streamed, resumable extraction).
        Its ``.npy`` files are checked memory-mapped; a failed check raises :class:`UserError`
        and leaves ``built`` where it is, unpublished. When another process published the same
        entry first, theirs is kept and ``built`` removed. Takes the entry's lock (reentrant).
        """
        with self.lock(kind, parts) as final:
            if final.exists():
                shutil.rmtree(built, ignore_errors=True)
                return final
            if validate is not None:
                _refuse(kind, validate(_arrays(built, "r")))
            (built / _META).write_text(json.dumps(dict(parts), sort_keys=True, default=str, indent=1))
            os.replace(built, final)
        return final

    @contextmanager
    def staging(
        self, kind: str, parts: Mapping[str, Any], *, validate: Validator | None = check_floats
    ) -> Iterator[Path]:
        """A temporary directory, under the entry's lock, that becomes the entry on success.

        Fill it inside the ``with``; it is checked and published only if the block ends without
        error, and removed otherwise.
        """
        with self.lock(kind, parts) as final:
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
            try:
                with disk_space(self.root):
                    yield tmp
                    self.publish(tmp, kind, parts, validate=validate)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


def require_space(folder: Path, needed: int) -> None:
    """A UserError when the disk of ``folder`` has less than ``needed`` bytes free (checked before writing)."""
    free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    if needed > free:
        raise _disk_full(folder, f"{needed / 2**20:.1f} MiB are needed and {free / 2**20:.1f} MiB are free")


@contextmanager
def disk_space(folder: Path, remove: Path | None = None) -> Iterator[None]:
    """Turn "no space left on device" (or quota exceeded) inside the block into one line naming
    ``folder``'s disk, removing ``remove`` (a half-written directory) first."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        if remove is not None:
            shutil.rmtree(remove, ignore_errors=True)
        raise _disk_full(folder, "no space is left on its disk") from None


def allocate(path: Path) -> None:
    """Allocate the blocks of a file now: writing a sparse memory-mapped file on a full disk ends in
    SIGBUS (exit 135, no message), while allocating raises ENOSPC, which :func:`disk_space` reports."""
    if hasattr(os, "posix_fallocate"):  # Linux; elsewhere the write itself is the test
        with open(path, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, path.stat().st_size)


def _disk_full(folder: Path, why: str) -> UserError:
    return UserError(f"The disk holding the cache at {folder} is full: {why}; nothing was cached.",
                     "Free space there, or pass --cache-dir (or set XLINGBENCH_CACHE to) a folder on a larger disk.")


def _usable_dir(root: Path) -> Path:
    """``root``, created; a one-line UserError when it is a file or cannot be written."""
    fix = "Pass --cache-dir (or set XLINGBENCH_CACHE to) a folder you can write."
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"The cache directory {root} is a file, not a folder.", fix) from None
    except OSError as exc:
        raise UserError(f"The cache directory {root} cannot be created: {exc.strerror}.", fix) from None
    try:  # a real write, not os.access: that says yes to root on /proc or a read-only mount
        os.rmdir(tempfile.mkdtemp(prefix=".writable-", dir=root))
    except OSError as exc:
        raise UserError(f"The cache directory {root} is not writable ({exc.strerror}).", fix) from None
    return root


def _arrays(entry: Path, mmap_mode: str | None) -> dict[str, np.ndarray]:
    """The ``.npy`` files of a directory by name, never unpickled."""
    return {p.stem: np.load(p, mmap_mode=mmap_mode, allow_pickle=False) for p in sorted(entry.glob("*.npy"))}


def _refuse(kind: str, problem: str | None) -> None:
    """Raise the one-line error for an entry that failed its check (nothing is published)."""
    if problem:
        raise UserError(
            f"Refusing to cache the {kind!r} entry: {problem}; nothing was saved.",
            "Check the settings that produced it (e.g. --set batch_size, the model's dtype) and run again.",
        )


def _acquire_waiting(lock: FileLock, kind: str) -> None:
    """Take ``lock``, saying so once when another process holds it (a wait may last an extraction)."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        _LOG.warning("waiting for another xlingbench process computing the same %s entry (%s)", kind, lock.lock_file)
        lock.acquire()


def _remove_orphans(final: Path) -> None:
    """Remove staging directories left by killed runs among ``final``'s kind.

    Only called by a new holder of ``final``'s lock: staging is created under the lock, so this
    entry's (``.<key>.*``) cannot belong to a live process. Another entry's is removed only when
    its lock can be taken now (no live process is filling it): otherwise the staging of an
    entry nobody asks for again, e.g. an alignment of a corpus since edited, would stay forever.
    ``<key>.partial`` (resumable extraction) is kept.
    """
    for orphan in final.parent.glob(".*.*"):
        key = orphan.name[1:].split(".", 1)[0]
        if not orphan.is_dir():
            continue
        if key == final.name:
            shutil.rmtree(orphan, ignore_errors=True)
            continue
        other = FileLock(final.parent / f"{key}.lock", is_singleton=True)
        if other.is_locked:  # held by this process
            continue
        try:
            other.acquire(timeout=0)
        except Timeout:
            continue
        try:
            shutil.rmtree(orphan, ignore_errors=True)
        finally:
            other.release()
