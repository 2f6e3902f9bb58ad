"""The offline parallel text: gettext catalogs of widely translated projects, frozen with the package.

The interface messages of Django, Apache Superset, Indico, OpenStack Horizon and nine of its
dashboards, Wagtail, django-oscar, Trac, django CMS, Flask-AppBuilder, django-allauth and Sphinx,
translated by people (BSD, MIT and Apache-2.0 licensed: the header of the data file names each
source's version, licence and wheel sha256). ``scripts/freeze_gettext_corpus.py`` read their catalogs once into
``data/gettext_corpus.tsv.xz``; it is read from there, hash-checked, with no dependency on those
packages, so the same install gives the same text on any machine and date. One aligned
"sentence" is one message translated in every requested language; the English side is the
msgid. Why several projects: Django's catalogs alone hold about 1,000 English word types, too
few for CALIGN's and COLAP's K of 600 (K is at most a tenth of the word types).
"""
from __future__ import annotations

import hashlib
import html
import lzma
import re
from functools import lru_cache
from pathlib import Path

from xlingbench.core.errors import UserError
from xlingbench.inputs.segmentation import Lines, icu_segmenter, icu_tokenizer_name, read_lines

#: the frozen catalogs and the sha256 of their (uncompressed) text; a new file goes with a new
#: version of tasks 4-5 (tests/test_gettext_data.py holds the pairing)
CORPUS_FILE = Path(__file__).with_name("data") / "gettext_corpus.tsv.xz"
CORPUS_SHA256 = "d23e82d2c8fc6af1a86ef2ef4da4db9e6bf32c4ba8b758029dded12f47d35998"
#: ICU locale of a language whose code alone segments otherwise (``zh`` is Simplified Chinese)
_ICU_LOCALES = {"zh": "zh_Hans"}
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*\d*(?:\.\d+)?[a-zA-Z%]|\{[^{}]*\}")
_HTML_TAG = re.compile(r"<[^<>]*>")
#: a keyboard accelerator: ``&`` starting a word ("&Save", Japanese "(&S)"), not an entity ("&amp;") nor inside one ("R&D")
_ACCELERATOR = re.compile(r"(?<![^\W_])&(?=[^\W\d_])(?![#\w]+;)")


def read_gettext(languages: list[str]) -> tuple[dict[str, Lines], str]:
    """Messages translated into every language in the frozen catalogs, in the file's order."""
    header, columns, rows = frozen_corpus()
    missing = [lang for lang in languages if lang not in columns]
    if missing:
        raise UserError(f"The offline catalogs have no language {', '.join(map(repr, missing))}.",
                        f"Use languages among {', '.join(columns)}, or give parallel data files.")
    index = [columns.index(lang) for lang in languages]
    chosen = [row for row in rows if all(row[i] for i in index)]
    lines = {lang: read_lines([row[i] for row in chosen], icu_segmenter(_ICU_LOCALES.get(lang, lang)))
             for lang, i in zip(languages, index)}
    return lines, f"{icu_tokenizer_name()}; source gettext catalogs (frozen, {header['sources']} sources)"


@lru_cache(maxsize=1)
def frozen_corpus() -> tuple[dict[str, str], list[str], list[list[str]]]:
    """(header, language columns, rows of texts) of the frozen file, hash-checked.

    A row's texts follow the columns; an empty text is a message not translated into that language.
    """
    text = lzma.decompress(CORPUS_FILE.read_bytes()).decode("utf-8")
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != CORPUS_SHA256:
        raise UserError(f"the packaged gettext catalogs {CORPUS_FILE.name} do not match their recorded sha256.",
                        "Reinstall xlingbench; the file was changed or damaged.")
    lines = text.splitlines()
    header = dict(line[2:].split("\t", 1) for line in lines if line.startswith("# ") and not line.startswith("# source\t"))
    header["sources"] = str(sum(1 for line in lines if line.startswith("# source\t")))
    columns = header["columns"].split("\t")[1:]
    rows = [line.split("\t")[1:] for line in lines if not line.startswith("# ")]
    return header, columns, rows


def clean_message(text: str) -> str:
    """A UI message as plain words: no format placeholders, HTML tags, accelerators or entities."""
    text = html.unescape(_ACCELERATOR.sub("", _PLACEHOLDER.sub(" ", _HTML_TAG.sub(" ", text))))
    return " ".join(text.split())
