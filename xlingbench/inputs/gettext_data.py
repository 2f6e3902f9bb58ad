"""The offline parallel text: Django's gettext catalogs, aligned by message.

The gettext catalogs that Django ships (``django/conf/locale/<lang>/LC_MESSAGES/*.po`` and the
``django/contrib/*`` apps' catalogs): the same English interface messages translated by people
into ~100 languages, installed from PyPI with ``pip install django`` (the ``offline`` extra).
Source: the Django project, https://www.djangoproject.com/, licence BSD-3-Clause. One aligned
"sentence" is one message translated (not fuzzy, not empty) in every requested language; the
English side is the msgid. Plural entries give their singular form, chosen by each catalog's own
``Plural-Forms`` rule at n=1. Printf/format placeholders (``%(name)s``, ``%s``, ``{0}``) and HTML
tags are removed. A message that occurs in several catalogs is kept once.
"""
from __future__ import annotations

import contextlib
import gettext
import html
import io
import re
from pathlib import Path

from xlingbench.core.errors import UserError
from xlingbench.inputs.segmentation import Lines, icu_segmenter, icu_tokenizer_name, read_lines

#: language codes whose Django locale directory has another name
_DJANGO_LOCALES = {"zh": "zh_Hans"}
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*\d*(?:\.\d+)?[a-zA-Z%]|\{[^{}]*\}")
_HTML_TAG = re.compile(r"<[^<>]*>")


def read_gettext(languages: list[str]) -> tuple[dict[str, Lines], str]:
    """Messages translated into every language in Django's catalogs, aligned by msgid."""
    root = _django_root()
    locales = {lang: _django_locale(root, lang) for lang in languages}
    texts: dict[str, list[str]] = {lang: [] for lang in languages}
    seen: set[tuple[str | None, str]] = set()
    for catalog in sorted(root.glob("**/locale/en/LC_MESSAGES/*.po")):
        found = {lang: _translations(catalog, loc) for lang, loc in locales.items() if loc != "en"}
        for key, english in _translations(catalog, "en").items():
            if key in seen or not all(key in messages for messages in found.values()):
                continue
            seen.add(key)
            for lang in languages:
                texts[lang].append(english if locales[lang] == "en" else found[lang][key])
    if not texts[languages[0]]:
        raise UserError(f"Django's catalogs have no message translated into all of {languages}.", "Ask for fewer or more common languages.")
    lines = {lang: read_lines(texts[lang], icu_segmenter(locales[lang])) for lang in languages}
    import django

    return lines, f"{icu_tokenizer_name()}; source django {django.__version__} gettext catalogs"


def _django_root() -> Path:
    try:
        import django
    except ImportError as exc:
        raise UserError(
            "The offline parallel data ('gettext') comes from Django's translation catalogs, and django is not installed.",
            "pip install 'xlingbench[offline]' (or pip install django), or give parallel data files.",
        ) from exc
    return Path(django.__file__).parent


def _django_locale(root: Path, lang: str) -> str:
    """Django's locale directory name for ``lang`` (``zh`` -> ``zh_Hans``, ``pt-BR`` -> ``pt_BR``)."""
    name = _DJANGO_LOCALES.get(lang, lang.replace("-", "_"))
    if not (root / "conf" / "locale" / name).is_dir():
        known = sorted(p.name for p in (root / "conf" / "locale").iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise UserError(f"Django has no translations for language {lang!r}.", f"Use one of: {', '.join(known)}.")
    return name


def _translations(english_catalog: Path, locale: str) -> dict[tuple[str | None, str], str]:
    """(context, msgid) -> cleaned translation of the catalog beside ``english_catalog`` in ``locale``.

    For ``en`` the cleaned msgid itself. Fuzzy, untranslated and empty-after-cleaning entries
    are left out; plural entries give the form the catalog's rule picks for n=1.
    """
    from babel.messages.pofile import read_po

    file = english_catalog.parents[2] / locale / "LC_MESSAGES" / english_catalog.name
    if not file.is_file():
        return {}
    # Some catalogs carry more plural forms than their header declares; Babel drops the extra
    # ones (which we never use) and prints a warning per entry to stdout: keep the run's output clean.
    with file.open("rb") as handle, contextlib.redirect_stdout(io.StringIO()):
        catalog = read_po(handle, ignore_obsolete=True)
    singular = gettext.c2py(catalog.plural_expr)(1)
    out: dict[tuple[str | None, str], str] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        msgid = message.id[0] if isinstance(message.id, tuple) else message.id
        if locale == "en":
            text = msgid
        else:
            text = message.string[singular] if isinstance(message.string, tuple) else message.string
        cleaned = clean_message(text or "")
        if cleaned:
            out[(message.context, msgid)] = cleaned
    return out


def clean_message(text: str) -> str:
    """A UI message as plain words: no format placeholders, HTML tags or entities."""
    text = html.unescape(_PLACEHOLDER.sub(" ", _HTML_TAG.sub(" ", text)))
    return " ".join(text.split())

