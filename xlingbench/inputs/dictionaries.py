"""Bilingual dictionaries: MUSE files, lexical tables, and the offline CLDR default.

A dictionary for a language pair ``en-<x>`` maps each English word to its translations
(``{"water": ["Wasser"], ...}``), in file order. Sources:

- ``muse``: the MUSE ground-truth dictionaries (Conneau et al. 2018, CC BY-NC 4.0), downloaded
  once from ``dl.fbaipublicfiles.com`` into the xlingbench cache (needs the internet once).
- local files in MUSE format (``source target`` a line, tab or space separated), named
  ``en-<x>.txt`` / ``en-<x>.tsv`` so that the pair is read from the name, or a directory of them.
- ``cldr`` (the default, offline): Unicode CLDR display names (Unicode licence, permissive:
  https://www.unicode.org/license.txt), frozen into ``data/cldr_dictionaries.tsv.gz`` by
  ``scripts/freeze_cldr_dictionaries.py`` (CLDR 49, read through babel 2.19) for English against
  45 languages (MUSE's 44 and Icelandic). Frozen, not read from babel at run time: the
  numbers and the fingerprint must not move when babel releases a new CLDR. For each key (a language, territory,
  script or currency code, a month, a weekday, a unit) the English name is paired with the target
  locale's name. Only names that are one word on both sides (letters and combining marks only:
  no spaces, digits or punctuation) are kept; multi-word names are dropped rather than split,
  because CLDR gives no word alignment. Names keep CLDR's casing, which is the form used inside
  running text ("German" / "allemand" / "Deutsch"; "January" / "janvier"). These are real
  translations made by people, but of a narrow vocabulary: names, not general words.

Also the lexical-table format of the CALIGN code (``src -> tgt: Probability = p``, optionally
followed by ``, Count = n``), used by tasks 4 and 5. This is not the layout of Moses' own
``lex.e2f`` / ``lex.f2e`` files (bare ``word word probability`` triples, written by
``train-model.perl``), which must be rewritten in the arrow form first. Every dictionary
carries a fingerprint (sha256 of its sorted pairs) for the run record.

Case: dictionaries are read as written. With ``match_case=False`` both sides are lowercased
(``str.lower``, the folding task 3's ``match_case=False`` uses) and entries that become equal
are merged in first-seen order, so a lowercase dictionary such as MUSE can meet cased text.

Files are UTF-8 (a leading byte-order mark is dropped); an empty, binary, UTF-16, non-UTF-8,
one-column, missing or directory path is a UserError naming the path and the fix.
"""
from __future__ import annotations

import gzip
import hashlib
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from xlingbench.core.errors import UserError
from xlingbench.inputs.cache import write_atomic
from xlingbench.inputs.text_files import read_text

DEFAULT_TARGETS = ("de", "fr", "es", "ru", "zh", "ja", "ar", "hi", "ko", "it", "pt", "tr")
MUSE_URL = "https://dl.fbaipublicfiles.com/arrival/dictionaries/en-{target}.txt"
#: a language code as dictionaries are named by it (de, zh, pt_BR, sr-Latn): never a path
LANGUAGE_CODE = r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]+)?"
_PAIR_NAME = re.compile(rf"^en-({LANGUAGE_CODE})$")
_LEXICAL_LINE = re.compile(r"^(\S+) -> (\S+): Probability = ([^\s,]+)(?:, Count = [^\s,]+)?\s*$")
#: the frozen CLDR dictionaries and the sha256 of their (uncompressed) text; a new file goes
#: with a new version of task 3 (tests/test_dictionaries.py holds the pairing)
CLDR_FILE = Path(__file__).with_name("data") / "cldr_dictionaries.tsv.gz"
CLDR_SHA256 = "3a00e5cc71b29c6290f97013cfeae119b6eb701fe6b270257423fe9a55066e96"


@dataclass(frozen=True)
class Dictionary:
    """One language pair's dictionary: English word -> translations, and where it came from."""

    pair: str  # "en-de"
    entries: dict[str, list[str]]
    source: str  # "cldr 47", a file path, or a URL

    @property
    def fingerprint(self) -> str:
        """sha256 of the sorted (source, target) pairs: the same pairs give the same print."""
        lines = sorted(f"{src}\t{tgt}" for src, targets in self.entries.items() for tgt in targets)
        return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()

    def record(self) -> dict[str, object]:
        """What a run logs about this dictionary."""
        pairs = sum(len(t) for t in self.entries.values())
        return {"source": self.source, "sha256": self.fingerprint, "words": len(self.entries), "pairs": pairs}


def group(pairs: Iterable[tuple[str, str]], match_case: bool = True) -> dict[str, list[str]]:
    """(source, target) pairs -> source -> distinct targets, in first-seen order; with
    ``match_case=False`` both sides lowercased first, so ``Water -> Wasser`` and
    ``water -> wasser`` become one entry ``water -> [wasser]``."""
    entries: dict[str, list[str]] = {}
    for src, tgt in pairs:
        if not match_case:
            src, tgt = src.lower(), tgt.lower()
        targets = entries.setdefault(src, [])
        if tgt not in targets:
            targets.append(tgt)
    return entries


def fold_case(table: Mapping[str, Sequence[tuple[str, float]]]) -> dict[str, list[tuple[str, float]]]:
    """A lexical table with both sides lowercased; a (source, target) pair met under several
    spellings keeps its highest probability, because probabilities conditioned on different
    source spellings cannot be added (they could exceed 1). Most probable first, ties by word."""
    best: dict[str, dict[str, float]] = {}
    for src, row in table.items():
        targets = best.setdefault(src.lower(), {})
        for tgt, prob in row:
            targets[tgt.lower()] = max(prob, targets.get(tgt.lower(), prob))
    return {src: sorted(targets.items(), key=lambda t: (-t[1], t[0])) for src, targets in best.items()}


def read_muse(path: str | Path) -> list[tuple[str, str]]:
    """(source, target) pairs of a MUSE-format file; lines without exactly two fields are skipped."""
    path = Path(path)
    fix = "Give a UTF-8 file with one 'source target' pair a line (tab or space separated)."
    rows = [fields for fields in map(str.split, read_text(path, "dictionary", fix).splitlines()) if fields]
    pairs = [(fields[0], fields[1]) for fields in rows if len(fields) == 2]
    if not pairs and all(len(fields) == 1 for fields in rows):
        raise UserError(f"the dictionary {path} has one column only (line 1: {rows[0][0]!r}): no translations.", fix)
    if not pairs:
        raise UserError(f"the dictionary {path} has no line of the form 'source target'.", fix)
    return pairs


def read_lexical_table(path: str | Path, match_case: bool = True) -> dict[str, list[tuple[str, float]]]:
    """Source word -> [(target, probability)], most probable first, from
    ``src -> tgt: Probability = p`` lines (a trailing ``, Count = n`` is accepted; the ranking
    is by probability). ``match_case=False``: both sides lowercased, see :func:`fold_case`."""
    path = Path(path)
    fix = "Give a UTF-8 file with lines of the form 'src -> tgt: Probability = 0.5' (optionally ', Count = 12')."
    table: dict[str, list[tuple[str, float]]] = {}
    for line in read_text(path, "lexical table", fix).splitlines():
        found = _LEXICAL_LINE.match(line)
        if found is None:
            continue
        try:
            table.setdefault(found[1], []).append((found[2], float(found[3])))
        except ValueError:
            continue
    if not table:
        raise UserError(f"the lexical table {path} has no line of the form 'src -> tgt: Probability = p'.", fix)
    if not match_case:
        return fold_case(table)
    return {src: sorted(row, key=lambda t: (-t[1], t[0])) for src, row in table.items()}


def download_muse(target: str, cache_dir: Path) -> Path:
    """The MUSE en-<target> dictionary, downloaded once into ``cache_dir`` (atomic write)."""
    path = cache_dir / "muse" / f"en-{target}.txt"
    if path.is_file():
        return path
    url = MUSE_URL.format(target=target)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as err:
        raise UserError(
            f"could not download the MUSE dictionary en-{target} from {url}: {err}.",
            "Run once with internet access, pass local files (dictionary=path/en-de.txt,...), "
            "or use the offline default dictionary=cldr.",
        ) from err
    write_atomic(path, data)
    return path


@lru_cache(maxsize=1)
def frozen_cldr() -> tuple[dict[str, str], dict[str, list[tuple[str, str]]]]:
    """(header, target -> (English, target) pairs) of the frozen CLDR file, hash-checked."""
    text = gzip.decompress(CLDR_FILE.read_bytes()).decode("utf-8")
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != CLDR_SHA256:
        raise UserError(f"the packaged CLDR dictionaries {CLDR_FILE} do not match their recorded sha256.",
                        "Reinstall xlingbench; the file was changed or damaged.")
    header: dict[str, str] = {}
    pairs: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if line.startswith("# "):
            header[fields[0][2:]] = "\t".join(fields[1:])
        else:
            pairs.setdefault(fields[0], []).append((fields[1], fields[2]))
    return header, pairs


def cldr_dictionary(target: str) -> Dictionary:
    """English -> ``target`` single-word names from the frozen CLDR data, aligned by key."""
    header, pairs = frozen_cldr()
    if target not in pairs:
        raise UserError(f"the offline CLDR dictionaries have no language {target!r}.",
                        f"Use one of {', '.join(sorted(pairs))}, or MUSE-format files (dictionary=path/en-{target}.txt).")
    return Dictionary(f"en-{target}", group(pairs[target]), f"cldr {header['cldr_version']} (frozen)")


def pair_of_file(path: Path) -> str:
    """``en-de`` from ``en-de.txt`` / ``en-de.tsv``; UserError when the name says no pair."""
    found = _PAIR_NAME.match(path.stem)
    if found is None:
        raise UserError(f"cannot tell the language pair of the dictionary {path} from its name.",
                        "Name dictionary files en-<lang>.txt or en-<lang>.tsv (English first), e.g. en-de.tsv.")
    return f"en-{found[1]}"


def load_dictionaries(spec: str, cache_dir: Path, targets: Sequence[str] = ()) -> list[Dictionary]:
    """Dictionaries for ``spec``: "cldr", "muse", or comma-separated MUSE files/directories.

    ``targets`` (e.g. ``["de", "ja"]``) keeps only those pairs; empty means the default targets
    for ``cldr``/``muse`` and every file given otherwise.
    """
    if spec in ("cldr", "muse"):
        chosen = list(targets) or list(DEFAULT_TARGETS)
        if spec == "cldr":
            return [cldr_dictionary(t) for t in chosen]
        return [_from_file(download_muse(t, cache_dir), f"en-{t}", MUSE_URL.format(target=t)) for t in chosen]
    files = [f for part in spec.split(",") if part.strip() for f in _expand(Path(part.strip()))]
    found = [_from_file(f, pair_of_file(f), str(f)) for f in files]
    kept = [d for d in found if not targets or d.pair in {f"en-{t}" for t in targets}]
    if not kept:
        raise UserError(f"no dictionary for the pairs {', '.join(targets)} in {spec}.",
                        "Add files named en-<lang>.txt for them, or change the pairs parameter.")
    return kept


def _expand(path: Path) -> list[Path]:
    """A file as itself; a directory as its ``en-*.txt`` / ``en-*.tsv`` files, sorted."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".txt", ".tsv") and p.name.startswith("en-"))
        if not files:
            raise UserError(f"the directory {path} holds no en-<lang>.txt or en-<lang>.tsv dictionary.",
                            "Point dictionary= at MUSE-format files named en-<lang>.txt.")
        return files
    if not path.is_file():
        raise UserError(f"the dictionary {path} does not exist.",
                        "Give dictionary=cldr, dictionary=muse, or existing files/directories, comma-separated.")
    return [path]


def _from_file(path: Path, pair: str, source: str) -> Dictionary:
    return Dictionary(pair, group(read_muse(path)), source)
