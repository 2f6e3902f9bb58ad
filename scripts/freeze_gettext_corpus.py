"""Freeze tasks 4-5's offline parallel text: gettext catalogs of widely translated projects.

Why: Django's catalogs alone give about 1,000 English word types, so CALIGN's and COLAP's K
(at most a tenth of the word types) shrank from 600 to 105-223. Several large projects'
catalogs together give more, and frozen into a package data file they are part of
xlingbench's version: no run-time dependency on those packages, the same text on any machine
and any date. Run this only to change the sources, together with a new version of tasks 4-5
(tests/test_gettext_data.py pins the file's sha256):

    pip download --no-deps -d WHEELS django==5.2.19 ...   (the SOURCES below, pinned)
    pip install 'babel==2.19.0' && python scripts/freeze_gettext_corpus.py WHEELS

Only wheels under permissive licences (BSD, MIT, Apache-2.0, as their METADATA declares) are
read: the text is redistributed (mayan-edms, GPL-2.0, and pretalx, AGPL-3.0, were left out). Each wheel is a zip; its ``<locale>/LC_MESSAGES/<domain>.po`` catalogs (``.mo``
where a wheel ships no ``.po``) are read with babel, never imported or executed. A message is
one (context, msgid); the English side is the msgid, each language's side its translation (not
fuzzy, not empty; plural entries give the form the catalog's rule picks for n=1). A message
found in several catalogs is kept once, from the first source in SOURCES order. The text is
kept as written, cleaned in one way (``xlingbench.inputs.gettext_data.clean_message``: format
placeholders, HTML tags and ``&`` accelerators removed, entities decoded, spaces collapsed).
"""
from __future__ import annotations

import contextlib
import gettext
import hashlib
import io
import re
import sys
import zipfile
from pathlib import Path

from babel import __version__ as babel_version
from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xlingbench.inputs.gettext_data import clean_message  # noqa: E402  (the one cleaning rule)

from freeze_cldr_dictionaries import write_frozen  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "xlingbench" / "inputs" / "data" / "gettext_corpus.tsv.xz"
#: (distribution, version, licence, home page), in the order a repeated message is taken from
SOURCES = (
    ("django", "5.2.19", "BSD-3-Clause", "https://www.djangoproject.com/"),
    ("apache-superset", "6.1.0", "Apache-2.0", "https://superset.apache.org/"),
    ("indico", "3.2.9", "MIT", "https://getindico.io/"),
    ("horizon", "27.0.0", "Apache-2.0", "https://opendev.org/openstack/horizon"),
    ("wagtail", "8.0.1", "BSD-3-Clause", "https://wagtail.org/"),
    ("django-oscar", "4.2.1", "BSD-3-Clause", "https://github.com/django-oscar/django-oscar"),
    ("trac", "1.6", "BSD-3-Clause", "https://trac.edgewall.org/"),
    ("django-cms", "5.1.3", "BSD-3-Clause", "https://www.django-cms.org/"),
    ("flask-appbuilder", "5.3.0", "BSD-3-Clause", "https://github.com/dpgaspar/Flask-AppBuilder"),
    ("django-allauth", "65.22.1", "MIT", "https://allauth.org/"),
    ("sphinx", "9.0.4", "BSD-2-Clause", "https://www.sphinx-doc.org/"),
    ("manila-ui", "16.0.0", "Apache-2.0", "https://opendev.org/openstack/manila-ui"),
    ("heat-dashboard", "16.0.0", "Apache-2.0", "https://opendev.org/openstack/heat-dashboard"),
    ("octavia-dashboard", "18.0.0", "Apache-2.0", "https://opendev.org/openstack/octavia-dashboard"),
    ("designate-dashboard", "23.0.0", "Apache-2.0", "https://opendev.org/openstack/designate-dashboard"),
    ("trove-dashboard", "27.0.0", "Apache-2.0", "https://opendev.org/openstack/trove-dashboard"),
    ("magnum-ui", "19.0.0", "Apache-2.0", "https://opendev.org/openstack/magnum-ui"),
    ("ironic-ui", "6.9.0", "Apache-2.0", "https://opendev.org/openstack/ironic-ui"),
    ("watcher-dashboard", "16.0.0", "Apache-2.0", "https://opendev.org/openstack/watcher-dashboard"),
    ("neutron-vpnaas-dashboard", "15.0.0", "Apache-2.0", "https://opendev.org/openstack/neutron-vpnaas-dashboard"),
)
#: languages kept: high-resource ones of PUD that most sources translate (English is the msgids)
LANGUAGES = ("de", "fr", "es", "it", "pt", "ru", "pl", "ja", "zh", "ko", "tr", "cs")
#: a language's locale directories, most preferred first (regional variants only where they are the main one)
_SPECIAL = {"zh": ("zh_Hans", "zh-Hans", "zh_CN", "zh_Hans_CN", "zh"), "pt": ("pt", "pt_PT")}
_CATALOG = re.compile(r"(?:^|/)([A-Za-z@_\-.]+)/LC_MESSAGES/([^/]+)\.(po|mo)$")

Key = tuple[str | None, str]


def locale_dirs(lang: str) -> tuple[str, ...]:
    """Locale directory names that hold ``lang`` (``de``, ``de_DE``, ``de-DE``), most preferred first."""
    return _SPECIAL.get(lang, (lang, f"{lang}_{lang.upper()}", f"{lang}-{lang.upper()}"))


def wheel_catalogs(wheel: zipfile.ZipFile) -> dict[tuple[str, str], dict[str, str]]:
    """(directory above the locales, domain) -> locale -> member name (``.po`` preferred over ``.mo``)."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for name in sorted(wheel.namelist()):
        match = _CATALOG.search(name)
        if not match:
            continue
        locale, domain, ext = match.groups()
        catalogs = found.setdefault((name[:match.start(1)], domain), {})
        if ext == "po" or locale not in catalogs:
            catalogs[locale] = name
    return found


def read_catalog(wheel: zipfile.ZipFile, member: str) -> Catalog | None:
    """One catalog, or None (said) when babel cannot read it (a malformed header date).

    Babel prints a warning per surplus plural form to stdout: keep the output clean.
    """
    data = io.BytesIO(wheel.read(member))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return read_po(data, ignore_obsolete=True) if member.endswith(".po") else read_mo(data)
    except ValueError as exc:
        print(f"skipped {wheel.filename and Path(wheel.filename).name}:{member}: {exc}")
        return None


def translations(catalog: Catalog) -> dict[Key, str]:
    """(context, msgid) -> cleaned singular translation; fuzzy, untranslated and empty ones left out."""
    singular = gettext.c2py(catalog.plural_expr)(1)
    out: dict[Key, str] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        msgid = message.id[0] if isinstance(message.id, (tuple, list)) else message.id
        text = message.string[singular] if isinstance(message.string, (tuple, list)) else message.string
        cleaned = clean_message(text or "")
        if cleaned and clean_message(msgid):
            out[(message.context, msgid)] = cleaned
    return out


def wheel_messages(path: Path) -> dict[Key, dict[str, str]]:
    """(context, msgid) -> language -> translation, over all catalogs of one wheel."""
    messages: dict[Key, dict[str, str]] = {}
    with zipfile.ZipFile(path) as wheel:
        for catalogs in wheel_catalogs(wheel).values():
            for lang in LANGUAGES:
                member = next((catalogs[d] for d in locale_dirs(lang) if d in catalogs), None)
                catalog = None if member is None else read_catalog(wheel, member)
                if catalog is None:
                    continue
                for key, text in translations(catalog).items():
                    messages.setdefault(key, {}).setdefault(lang, text)
    return messages


def find_wheel(folder: Path, dist: str, version: str) -> Path:
    """The downloaded wheel of ``dist==version`` (wheel names use underscores, any case)."""
    stem = re.sub(r"[-_.]+", "_", dist).lower()
    for path in sorted(folder.glob("*.whl")):
        name, found_version = path.name.split("-")[:2]
        if re.sub(r"[-_.]+", "_", name).lower() == stem and found_version == version:
            return path
    raise SystemExit(f"no wheel of {dist}=={version} in {folder}: pip download --no-deps -d {folder} {dist}=={version}")


def main(folder: Path) -> None:
    header = [f"# babel_version\t{babel_version}", f"# languages\ten,{','.join(LANGUAGES)}",
              "# cleaning\tformat placeholders, HTML tags and & accelerators removed, entities decoded, spaces collapsed"]
    rows, seen = [], set()
    for index, (dist, version, licence, home) in enumerate(SOURCES):
        wheel = find_wheel(folder, dist, version)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        header.append(f"# source\t{index}\t{dist}\t{version}\t{licence}\t{home}\t{wheel.name}\tsha256:{digest}")
        for key, texts in wheel_messages(wheel).items():
            if key in seen:
                continue
            seen.add(key)
            rows.append("\t".join([str(index), clean_message(key[1])] + [texts.get(lang, "") for lang in LANGUAGES]))
    header.append(f"# columns\tsource\ten\t{chr(9).join(LANGUAGES)}")
    write_frozen(OUT, header, rows, f"{len(SOURCES)} sources, {len(rows)} messages", f"babel {babel_version}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
