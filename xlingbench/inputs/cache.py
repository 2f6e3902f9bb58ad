"""An on-disk cache of arrays, keyed by everything that determines them, written atomically.

Why: reading a 250k x 4096 embedding matrix or extracting word vectors for 13 layers is the
slow part of a run; a second run of the same model and revision must not redo it. An entry is
a directory of ``.npy`` files plus ``meta.json``. It is built in a temporary sibling directory
and moved into place with one ``os.replace``, so an interrupted run never leaves a half-written
entry: the entry is either complete or absent. Arrays are loaded with ``allow_pickle=False``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

DEFAULT_CACHE_DIR = Path(os.environ.get("XLINGBENCH_CACHE", ".xlingbench-cache"))
_META = "meta.json"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write one file so that a crash leaves the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp.name, path)


def cache_key(parts: Mapping[str, Any]) -> str:
    """A stable hash of the parts that determine an entry (model id, revision, parameters...)."""
    canonical = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


class Cache:
    """Atomic array cache rooted at one directory; ``kind`` separates families of entries."""

    def __init__(self, root: Path | str = DEFAULT_CACHE_DIR) -> None:
        self.root = Path(root)

    def entry_dir(self, kind: str, parts: Mapping[str, Any]) -> Path:
        """Where the complete entry for ``parts`` lives (it may not exist yet)."""
        return self.root / kind / cache_key(parts)

    def is_complete(self, kind: str, parts: Mapping[str, Any]) -> bool:
        """Whether a complete entry for ``parts`` exists."""
        return (self.entry_dir(kind, parts) / _META).is_file()

    def load(self, kind: str, parts: Mapping[str, Any], mmap: bool = False) -> dict[str, np.ndarray] | None:
        """The arrays of a complete entry, or None when there is none."""
        if not self.is_complete(kind, parts):
            return None
        entry = self.entry_dir(kind, parts)
        mode = "r" if mmap else None
        return {p.stem: np.load(p, mmap_mode=mode, allow_pickle=False) for p in sorted(entry.glob("*.npy"))}

    def save(self, kind: str, parts: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Path:
        """Write ``arrays`` as one entry, atomically."""
        with self.staging(kind, parts) as tmp:
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", np.asarray(array), allow_pickle=False)
        return self.entry_dir(kind, parts)

    def get_or_compute(
        self, kind: str, parts: Mapping[str, Any], compute: Callable[[], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """Load the entry for ``parts``; compute and store it first when absent."""
        found = self.load(kind, parts)
        if found is not None:
            return found
        self.save(kind, parts, compute())
        return self.load(kind, parts)  # type: ignore[return-value]

    def publish(self, built: Path, kind: str, parts: Mapping[str, Any]) -> Path:
        """Make the finished directory ``built`` the entry for ``parts`` with one ``os.replace``.

        For entries built in pieces outside :meth:`staging` (streamed, resumable extraction).
        When another process published the same entry first, theirs is kept and ``built`` removed.
        """
        final = self.entry_dir(kind, parts)
        (built / _META).write_text(json.dumps(dict(parts), sort_keys=True, default=str, indent=1))
        if final.exists():
            shutil.rmtree(built, ignore_errors=True)
        else:
            os.replace(built, final)
        return final

    def staging(self, kind: str, parts: Mapping[str, Any]) -> "_Staging":
        """A context manager giving a temporary directory that becomes the entry on success.

        Use it directly for entries written in pieces (streamed word vectors): fill the
        directory inside the ``with``; it is published only if the block ends without error.
        """
        return _Staging(self, kind, dict(parts))


class _Staging:
    def __init__(self, cache: Cache, kind: str, parts: dict[str, Any]) -> None:
        self.cache, self.kind, self.parts = cache, kind, parts
        self.final = cache.entry_dir(kind, parts)

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.", dir=self.final.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        self.cache.publish(self.tmp, self.kind, self.parts)
