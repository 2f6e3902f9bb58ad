"""Output folders: a command writes only into a folder it may claim, and replaces only its own files.

Why: ``xlingbench leaderboard --out .`` once deleted a project's ``models/`` folder. A command that
writes a folder of files first claims it: a missing folder is created, an empty one is taken, and
either gets a marker file (:data:`MARKER`) that names the command and lists the files it wrote; a
folder holding that marker was written by xlingbench before and is reused. Any other folder (a
user's files in it) or a file in its place is refused with one line, so nothing of the user's is
ever overwritten or deleted. Stale files of an earlier output (a model no longer on the board) are
removed only when the marker lists them.
"""
from __future__ import annotations

import json
from pathlib import Path

from xlingbench.core.errors import UserError

#: the marker file of a folder xlingbench writes: JSON {"written_by": "xlingbench", "files": {command: [relative paths]}}
MARKER = ".xlingbench-output"


def check_folder(folder: Path, command: str) -> None:
    """Refuse, with one line, a ``folder`` that :func:`claim_folder` would refuse; creates nothing."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder: `xlingbench {command}` writes a folder of files there.",
                        "Choose a new or empty folder.")
    if folder.is_dir() and not (folder / MARKER).is_file() and any(folder.iterdir()):
        raise UserError(f"{folder} already holds files xlingbench did not write, and `xlingbench {command}` would "
                        "replace some of them.", "Choose a new or empty folder.")


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
        raise UserError(f"cannot write to the folder {folder}: {err.strerror}.", "Choose a folder you can write to.") from err
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
    (folder / MARKER).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def replace_outputs(folder: Path, command: str, files: dict[Path, str]) -> None:
    """Claim ``folder``, write ``files`` (relative path -> text), remove what the same command wrote
    last time and no longer writes (a model gone from the board), and record the new list."""
    written = claim_folder(folder, command)
    for relative, text in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    for stale in written.get(command, set()) - set(files):
        if (folder / stale).is_file():
            (folder / stale).unlink()
    record_files(folder, {**written, command: set(files)})


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
