"""Output folders: a command writes only into a folder it may claim, and replaces only its own files.

Why: ``xlingbench leaderboard --out .`` once deleted a project's ``models/`` folder. A command that
writes a folder of files first claims it: a missing folder is created, an empty one is taken, and
either gets a marker file (:data:`MARKER`) that names the command and lists the files it wrote; a
folder holding that marker was written by xlingbench before and is reused. Any other folder (a
user's files in it) or a file in its place is refused with one line, so nothing of the user's is
ever overwritten or deleted. Stale files of an earlier output (a model no longer on the board) are
removed only when the marker lists them.

Two more guards, because a folder may be shared: nothing inside a claimed folder is written
through a symbolic link (a linked ``index.html`` or ``models/`` is refused with one line before
anything is written, so a file outside the folder is never touched), and a folder is written by
one command at a time (an OS lock on :data:`LOCK` inside it; a second writer is refused with one
line instead of silently mixing or replacing the first one's pages). Each file is written to a
temporary sibling and moved into place, so a kill leaves the old page or the new one.
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from xlingbench.core.errors import UserError

#: the marker file of a folder xlingbench writes: JSON {"written_by": "xlingbench", "files": {command: [relative paths]}}
MARKER = ".xlingbench-output"
#: the lock file a command holds while it writes the folder (the OS drops it if the holder dies)
LOCK = ".xlingbench-output.lock"


def check_folder(folder: Path, command: str) -> None:
    """Refuse, with one line, a ``folder`` that :func:`claim_folder` would refuse; creates nothing."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder: `xlingbench {command}` writes a folder of files there.",
                        "Choose a new or empty folder.")
    if folder.is_dir() and not (folder / MARKER).is_file() and any(p.name != LOCK for p in folder.iterdir()):
        raise UserError(f"{folder} already holds files xlingbench did not write, and `xlingbench {command}` would "
                        "replace some of them.", "Choose a new or empty folder.")
    if folder.is_dir():
        written = written_files(folder / MARKER) if not (folder / MARKER).is_symlink() else {}
        check_links(folder, [Path(MARKER), Path(LOCK), *(p for files in written.values() for p in files)], command)


def check_links(folder: Path, relatives: Iterable[Path], command: str) -> None:
    """Refuse, with one line, a symbolic link at or above any of ``relatives`` inside ``folder``:
    writing through it would change a file outside the folder the user gave."""
    for relative in relatives:
        for depth in range(1, len(relative.parts) + 1):
            path = folder.joinpath(*relative.parts[:depth])
            if path.is_symlink():
                raise UserError(f"{path} is a symbolic link, and `xlingbench {command}` writes only inside {folder}, "
                                "never through a link; nothing was written.", "Remove the link, or choose a new or empty folder.")


def claim_folder(folder: Path, command: str) -> dict[str, set[Path]]:
    """Claim ``folder`` for ``command``'s output (creating and marking it); returns the files
    (relative) each command wrote there before. A UserError where :func:`check_folder` refuses."""
    check_folder(folder, command)
    marker = folder / MARKER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = written_files(marker)
        if not marker.is_file():
            record_files(folder, written)
    except OSError as err:
        raise _unwritable(folder, err) from err
    return written


def written_files(marker: Path) -> dict[str, set[Path]]:
    """``command -> files`` a marker lists (nothing for a missing or unreadable one: then nothing is removed)."""
    try:
        listed = json.loads(marker.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(listed, dict):
        return {}
    return {command: {Path(name) for name in names if isinstance(name, str) and _inside(Path(name))}
            for command, names in listed.items() if isinstance(names, list)}


def _inside(path: Path) -> bool:
    """A marker's entry names a file inside its folder (a hand-edited marker cannot point elsewhere)."""
    return not path.is_absolute() and ".." not in path.parts


def record_files(folder: Path, written: dict[str, set[Path]]) -> None:
    """Write the marker: which files (relative to ``folder``) each xlingbench command wrote there."""
    document = {"written_by": "xlingbench", "files": {command: sorted(p.as_posix() for p in files)
                                                       for command, files in sorted(written.items())}}
    _replace(folder / MARKER, json.dumps(document, indent=1) + "\n")


def replace_outputs(folder: Path, command: str, files: dict[Path, str]) -> None:
    """Claim ``folder``, write ``files`` (relative path -> text), remove what the same command wrote
    last time and no longer writes (a model gone from the board), and record the new list.

    Everything is checked before the first file is written: a link inside the folder or a second
    writer holding the folder is one line and leaves the folder as it was."""
    try:
        check_folder(folder, command)
    except UserError:
        if not (folder / LOCK).exists():
            raise
        # seen mid-way through another writer (its marker's temporary sibling, no marker yet): while it
        # holds the folder this is refused as such, not as a stranger's folder; once it has finished,
        # the folder it left is judged again
        with writing(folder, command):
            check_folder(folder, command)
    _create(folder)
    with writing(folder, command):
        written = claim_folder(folder, command)
        stale = written.get(command, set()) - set(files)
        check_links(folder, [*files, *stale], command)
        try:
            for relative, text in files.items():
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                _replace(folder / relative, text)
            for path in stale:
                (folder / path).unlink(missing_ok=True)
            record_files(folder, {**written, command: set(files)})
        except OSError as err:
            raise _unwritable(folder, err) from err


@contextmanager
def writing(folder: Path, command: str) -> Iterator[None]:
    """Hold ``folder``'s :data:`LOCK` for the block; a folder another process is writing is refused at once."""
    from filelock import FileLock, Timeout

    check_links(folder, [Path(LOCK)], command)
    lock = FileLock(str(folder / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"another xlingbench command is writing to {folder} now; `xlingbench {command}` would mix "
                        "its files with that one's.", "Wait for it to finish, or write to another folder.") from None
    except OSError as err:
        raise _unwritable(folder, err) from err
    try:
        yield
    finally:
        lock.release()


def _unwritable(folder: Path, err: OSError) -> UserError:
    return UserError(f"cannot write to the folder {folder}: {err.strerror}.", "Choose a folder you can write to.")


def _create(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(folder, err) from err


def _replace(path: Path, text: str) -> None:
    """Write ``path`` through a new temporary sibling and one rename: a kill leaves the old file or the
    new one, and a link planted at ``path`` after the check is replaced, never written through.
    The sibling is created with the usual permissions (0o666 less the umask), as ``open`` would."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def write_file(path: Path, text: str) -> None:
    """Write a file the user named explicitly (``--out board.md``, ``--expect``), creating its folder;
    a folder in its place or an unwritable path is one line, not a traceback."""
    if path.is_dir():
        raise UserError(f"{path} is a folder; a file of that name is to be written.", "Name a file.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror}.", "Choose a path you can write to.") from err
