"""Concepts named in several languages, for cross-lingual concept patching.

A concept is one row: an id and its word in each language (``country-DE``: Germany, Deutschland,
Allemagne, 德国...). Sources:

- ``cldr`` (the default, offline): months, weekdays, units of time and countries named by Unicode
  CLDR (Unicode licence, permissive), frozen into ``data/concept_words.tsv.gz`` by
  ``scripts/freeze_concept_words.py`` (CLDR 49 through babel 2.19), with each language's name
  in its own language for the prompts. Frozen, not read from babel at run time, so that the
  numbers do not move with a babel release.
- a file (``words=FILE``): UTF-8, tab- or comma-separated, a header row of language codes (a
  column ``concept`` or ``word_original``, when present, names each row; other non-language
  columns such as ``PoS`` are ignored), one concept a row. Multi-SimLex and Dumas et al.'s
  ``word_translation.csv`` fit once their columns are named by language code. An empty cell
  leaves that language out of the concept. Languages are then named by their English
  names unless babel is installed.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from xlingbench.core.errors import UserError
from xlingbench.inputs.text_files import read_text

CLDR_FILE = Path(__file__).with_name("data") / "concept_words.tsv.gz"
#: sha256 of the frozen file's text; a new file goes with a new version of concept_patching
CLDR_SHA256 = "91f71eb6e72ded1ccb314ca886fac12bf24da5dd8c411778ba5b52e6af961bb9"
_ID_COLUMNS = ("concept", "word_original")
_CODE = re.compile(r"^[a-z]{2,3}$")
#: names written in their own language for a words=FILE run (the frozen file carries its own)
OWN_NAMES = {"en": "English", "de": "Deutsch", "fr": "Français", "es": "Español", "it": "Italiano",
             "nl": "Nederlands", "pt": "Português", "ru": "Русский", "zh": "中文", "ja": "日本語",
             "ko": "한국어", "fi": "Suomi", "et": "Eesti", "hi": "हिन्दी", "pl": "Polski", "tr": "Türkçe",
             "ar": "العربية", "sv": "Svenska", "uk": "Українська", "cy": "Cymraeg", "he": "עברית"}


@dataclass
class ConceptWords:
    """Concept ids, their word per language, and each language's name in its own language."""

    source: str
    languages: list[str]
    names: dict[str, str]
    words: dict[str, dict[str, str]]  # concept id -> language -> word
    info: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """sha256 of the sorted (concept, language, word) triples and the language names."""
        text = "\n".join(f"{c}\t{lang}\t{w}" for c in sorted(self.words) for lang, w in sorted(self.words[c].items()))
        text += "\n" + "\n".join(f"{lang}\t{n}" for lang, n in sorted(self.names.items()))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_concept_words(spec: str) -> ConceptWords:
    """The frozen CLDR concepts (``spec == "cldr"``) or the concepts of the file ``spec``."""
    if spec == "cldr":
        text = gzip.decompress(CLDR_FILE.read_bytes()).decode("utf-8")
        return _parse(text, "cldr", "\t")
    path = Path(spec)
    fix = "It should be a tab- or comma-separated table with a header row of language codes (en, de...), one concept a row."
    text = read_text(path, "concept word list", fix)
    delimiter = "\t" if "\t" in text.splitlines()[0] else ","
    return _parse(text, str(path), delimiter)


def _parse(text: str, source: str, delimiter: str) -> ConceptWords:
    """Header comments (``# key<TAB>value``), a header row, then one concept a row."""
    info = {}
    lines = []
    for line in text.splitlines():
        if line.startswith("# "):
            key, _, value = line[2:].partition("\t")
            info[key] = value
        elif line.strip():
            lines.append(line)
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header = [h.strip() for h in rows[0]]
    languages = [h for h in header if _CODE.match(h)]
    if len(languages) < 2:
        raise UserError(f"the concept word list {source} names fewer than two languages in its header ({', '.join(header)}).",
                        "Name each language column by its code: en, de, fr...")
    id_column = next((header.index(c) for c in _ID_COLUMNS if c in header), None)
    words: dict[str, dict[str, str]] = {}
    for n, row in enumerate(rows[1:], start=1):
        cells = dict(zip(header, (c.strip() for c in row)))
        concept = row[id_column].strip() if id_column is not None and id_column < len(row) else f"row-{n}"
        found = {lang: cells[lang] for lang in languages if cells.get(lang)}
        if '"' in "".join(found.values()):
            raise UserError(f"concept {concept!r} of {source} has a word with a double quote, which would close the prompt's quotation.",
                            "Remove the quotation marks from the words.")
        words.setdefault(concept, found)
    names_row = info.pop("names", "").split("\t")
    names = dict(zip(header[2:], names_row)) if len(names_row) == len(header) - 2 else {}
    names = {lang: names.get(lang) or OWN_NAMES.get(lang, lang) for lang in languages}
    return ConceptWords(source=source, languages=languages, names=names, words=words, info=info)
