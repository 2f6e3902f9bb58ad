"""Reading a user's text file (a dictionary, parallel data) with one clear line for each way it can be wrong.

Why one reader: dictionaries and parallel data arrive as files of unknown origin -- empty,
gzipped, UTF-16 from a spreadsheet, Latin-1 from an old tool, a directory given by mistake.
Each is a :class:`UserError` naming the file and the fix (for an encoding, the ``iconv`` command),
never a ``UnicodeDecodeError`` traceback, and every reader says it the same way.
"""
from __future__ import annotations

from pathlib import Path

from xlingbench.core.errors import UserError

#: byte-order marks of encodings that are not UTF-8, and how iconv names them
_FOREIGN_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32LE"), (b"\x00\x00\xfe\xff", "UTF-32BE"),
                 (b"\xff\xfe", "UTF-16LE"), (b"\xfe\xff", "UTF-16BE"))


def read_text(path: Path, what: str, fix: str) -> str:
    """The text of a UTF-8 file without its byte-order mark; a UserError naming ``path`` and
    the fix for a missing path, a directory, an empty, binary, UTF-16/32 or non-UTF-8 file
    (``fix`` says what the file should hold)."""
    if path.is_dir():
        raise UserError(f"the {what} {path} is a directory, not a file.",
                        f"Name a file inside it. {fix}")
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise UserError(f"the {what} {path} does not exist.", f"Check the path. {fix}") from err
    except OSError as err:
        raise UserError(f"cannot read the {what} {path}: {err.strerror or err}.", "Check its permissions.") from err
    if not data.strip():
        raise UserError(f"the {what} {path} is empty.", fix)
    encoding = next((name for bom, name in _FOREIGN_BOMS if data.startswith(bom)), None)
    if encoding:
        raise UserError(f"the {what} {path} is {encoding}, not UTF-8.",
                        f"Convert it: iconv -f {encoding} -t UTF-8 {path} > {path.stem}.utf8{path.suffix}")
    if b"\x00" in data:
        raise UserError(f"the {what} {path} is a binary file, not text.",
                        f"Decompress it first if it is compressed (gunzip, unzip). {fix}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UserError(f"the {what} {path} is not UTF-8 (byte 0x{data[err.start]:02x} on line {line}).",
                        f"Convert it: iconv -f <its encoding, e.g. latin1> -t UTF-8 {path} > {path.stem}.utf8{path.suffix}") from err
