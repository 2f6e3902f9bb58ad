"""Freeze task 3's offline default dictionaries: CLDR display names, read once through babel.

Why: read at run time, the dictionaries (and so task 3's numbers and the configuration
fingerprint) moved whenever a new babel release shipped a new CLDR. Frozen into a package data
file, they are part of xlingbench's version: the same install gives the same numbers on any
machine and any date. Run this only to move to a newer CLDR, together with a new task version
(tests/test_dictionaries.py pins the file's sha256 to task 3's version):

    pip install 'babel==2.19.0' && python scripts/freeze_cldr_dictionaries.py

For each key of a CLDR section (a language, territory, script or currency code, a month, a
weekday, a unit) the English name is paired with the target locale's name when both are one word
(letters and combining marks only, starting with a letter): CLDR gives no word alignment, so
multi-word names are dropped rather than split.
"""
from __future__ import annotations

import gzip
import hashlib
import lzma
import unicodedata
from pathlib import Path

from babel import Locale, __version__ as babel_version
from babel.core import get_cldr_version

OUT = Path(__file__).resolve().parents[1] / "xlingbench" / "inputs" / "data" / "cldr_dictionaries.tsv.gz"
#: MUSE's 44 English pairs plus Icelandic (in PUD): the languages with published ground truth
TARGETS = ("af", "ar", "bg", "bn", "bs", "ca", "cs", "da", "de", "el", "es", "et", "fa", "fi", "fr", "he",
           "hi", "hr", "hu", "id", "is", "it", "ja", "ko", "lt", "lv", "mk", "ms", "nl", "no", "pl", "pt",
           "ro", "ru", "sk", "sl", "sq", "sv", "ta", "th", "tl", "tr", "uk", "vi", "zh")
SECTIONS = ("languages", "territories", "scripts", "currencies", "months", "days", "units")
LICENCE = "Unicode License v3 (https://www.unicode.org/license.txt): Unicode CLDR data, via babel"


def one_word(name: str | None) -> bool:
    """Letters and combining marks only, starting with a letter (Hindi vowel signs are marks)."""
    return bool(name) and unicodedata.category(name[0]).startswith("L") and all(
        unicodedata.category(ch)[0] in "LM" for ch in name)


def names(locale: Locale, section: str) -> dict[object, str]:
    """Key -> display name of one CLDR section."""
    if section == "months":
        return dict(locale.months["format"]["wide"])
    if section == "days":
        return dict(locale.days["format"]["wide"])
    if section == "units":
        found = locale.unit_display_names
        return {key: found[key]["long"] for key in found if "long" in found[key]}
    return dict(getattr(locale, section))


def pairs(target: str) -> list[list[str]]:
    """(English, target) single-word names aligned by key, in CLDR's section and key order."""
    english, other = Locale.parse("en"), Locale.parse(target)
    found = []
    for section in SECTIONS:
        theirs = names(other, section)
        found += [[name, theirs[key]] for key, name in names(english, section).items()
                  if one_word(name) and one_word(theirs.get(key))]
    return found


def main() -> None:
    header = [f"# cldr_version\t{get_cldr_version()}", f"# babel_version\t{babel_version}",
              f"# licence\t{LICENCE}", f"# sections\t{','.join(SECTIONS)}", "# columns\ttarget\tenglish\tname"]
    rows = [f"{target}\t{english}\t{name}" for target in TARGETS for english, name in pairs(target)]
    write_frozen(OUT, header, rows, f"{len(TARGETS)} targets, {len(rows)} pairs")


def write_frozen(out: Path, header: list[str], rows: list[str], counts: str, origin: str = "") -> None:
    """Write the lines compressed with no timestamp (the same bytes on every run) and say what was
    written: xz for a ``.xz`` file (the large gettext corpus: 1.8 MB where gzip gives 2.6), gzip otherwise."""
    text = "\n".join(header + rows) + "\n"
    data = text.encode("utf-8")
    packed = lzma.compress(data, preset=9 | lzma.PRESET_EXTREME) if out.suffix == ".xz" else gzip.compress(data, compresslevel=9, mtime=0)
    out.write_bytes(packed)
    print(f"{out.name}: {origin or f'CLDR {get_cldr_version()}'}, {counts}, "
          f"{out.stat().st_size} bytes compressed, content sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
