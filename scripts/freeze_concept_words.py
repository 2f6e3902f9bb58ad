"""Freeze the concept-patching task's default concepts: CLDR names, read once through babel.

Why frozen: as with task 3's dictionaries, the concepts (and so the patching numbers and the
configuration fingerprint) must not move when babel ships a new CLDR. Run this only to move to a
newer CLDR, together with a new version of ``concept_patching`` (tests/test_concept_words.py pins
the file's sha256):

    pip install 'babel==2.19.0' && python scripts/freeze_concept_words.py

A concept is one CLDR key named in every language of LANGUAGES: a month, a weekday, a unit of
time, a country. They are nouns whose translations were made by people; a name may have several
words or a digit ("segunda-feira", "3月": the prompt quotes it whole and the patch goes to its
last token). Countries whose Latin-script names have fewer than MIN_LATIN_SPELLINGS spellings
("Angola" in all seven) are left out: patching them cannot tell a translated concept from a
copied string. Months and weekdays are taken in their stand-alone form (Russian "март", not the genitive
"марта" used inside a date); units of time in their long plural ("hours", "Stunden"). CLDR has no
colour names, so colours are not among them. Each language is named in its own language, first
letter capitalised ("Français", "Deutsch", "中文"), as the prompts write it.
"""
from __future__ import annotations

import unicodedata
from pathlib import Path

from babel import Locale, __version__ as babel_version
from babel.core import get_cldr_version

from freeze_cldr_dictionaries import LICENCE, write_frozen

OUT = Path(__file__).resolve().parents[1] / "xlingbench" / "inputs" / "data" / "concept_words.tsv.gz"
#: high-resource languages of several scripts, all in Dumas et al.'s and Körner et al.'s lists
LANGUAGES = ("en", "de", "fr", "es", "it", "nl", "pt", "ru", "zh", "ja")
LATIN = ("en", "de", "fr", "es", "it", "nl", "pt")
#: a concept whose Latin-script names have fewer spellings is mostly a copy ("Angola" everywhere)
MIN_LATIN_SPELLINGS = 3
TIME_UNITS = ("duration-year", "duration-month", "duration-week", "duration-day", "duration-hour",
              "duration-minute", "duration-second")


def section_names(locale: Locale, section: str) -> dict[str, str]:
    """Concept id -> this locale's name, for one section."""
    if section == "month":
        return {f"month-{k}": v for k, v in locale.months["stand-alone"]["wide"].items()}
    if section == "weekday":
        return {f"weekday-{k}": v for k, v in locale.days["stand-alone"]["wide"].items()}
    if section == "time":
        found = locale.unit_display_names
        return {key: found[key]["long"] for key in TIME_UNITS if "long" in found.get(key, {})}
    return {f"country-{k}": v for k, v in locale.territories.items() if len(k) == 2 and k.isalpha()}


def concepts() -> list[list[str]]:
    """Rows (id, section, word per language) of the keys that are one word in every language."""
    locales = {lang: Locale.parse(lang) for lang in LANGUAGES}
    rows = []
    for section in ("month", "weekday", "time", "country"):
        named = {lang: section_names(loc, section) for lang, loc in locales.items()}
        for key in named["en"]:
            words = [named[lang].get(key) for lang in LANGUAGES]
            if all(fit_name(w) for w in words) and len({w for lang, w in zip(LANGUAGES, words) if lang in LATIN}) >= MIN_LATIN_SPELLINGS:
                rows.append([key, section, *words])
    return rows


def fit_name(name: str | None) -> bool:
    """Letters, marks, digits, spaces and hyphens, starting with a letter or digit ("3月",
    "segunda-feira"): nothing that could close the prompt's quotation marks or a TSV field."""
    return bool(name) and unicodedata.category(name[0])[0] in "LN" and all(
        unicodedata.category(ch)[0] in "LMN" or ch in " -" for ch in name)


def own_name(lang: str) -> str:
    """The language's name in itself, first letter capitalised."""
    name = Locale.parse(lang).get_display_name(lang)
    return name[:1].upper() + name[1:]


def main() -> None:
    header = [f"# cldr_version\t{get_cldr_version()}", f"# babel_version\t{babel_version}", f"# licence\t{LICENCE}",
              "# names\t" + "\t".join(own_name(lang) for lang in LANGUAGES),
              "concept\tsection\t" + "\t".join(LANGUAGES)]
    rows = ["\t".join(row) for row in concepts()]
    write_frozen(OUT, header, rows, f"{len(LANGUAGES)} languages, {len(rows)} concepts")

if __name__ == "__main__":
    main()
