"""Line-aligned parallel sentences in several languages, word-tokenised: the input of tasks 4-5.

Sources (``load_parallel(spec, languages)``):

- ``"gettext"`` (the offline default): gettext catalogs of 20 widely translated projects, frozen
  with the package: interface messages translated by people into 12 languages
  (:mod:`xlingbench.inputs.gettext_data`).
- a path: a directory holding one file per language (``<name>.<lang>.tok`` / ``.txt`` or
  ``<lang>.tok`` / ``.txt``), a prefix such as ``data/pud/pud`` (files ``pud.<lang>.tok``), or a
  ``.tsv`` file whose header row names the languages (``.tok.tsv``: pre-tokenised).
- ``hf:<dataset id>@<revision>[#split]``: a Hugging Face dataset with one config per language
  and a ``text`` column, e.g. FLORES+ (:data:`FLORES_PLUS`; configs such as ``eng_Latn``,
  splits ``dev`` / ``devtest``). Pin the revision to a commit hash so that runs are comparable.

Pre-tokenised text (``.tok``) is split on whitespace as it is. When a language has both
``.tok`` and ``.txt`` files of the same name, the model reads the raw ``.txt`` sentence and the gold
``.tok`` words are located in it by character alignment (:mod:`xlingbench.inputs.gold_words`);
a word that cannot be located is left out and counted in the corpus's ``word_tokenizer``
record, which also says which reading was used. Raw text is split into words by
ICU's dictionary-based word breaker (``icu4py``): unlike blingfire's ``text_to_words`` or
sacremoses, it segments Chinese, Japanese, Thai, Khmer, Lao and Burmese, which have no spaces
between words. Lines where any language has ``max_words`` or more words are dropped (the
published pipeline's limit of 300) and counted. The fingerprint is the sha256 of the words and
texts actually kept, so it changes whenever the data the tasks see changes.

Each line keeps its text and each word's character span in it, because a model must read the
sentence as written: tokenising words one by one puts a word-start marker before every word
(Chinese grows by 62% in subwords). The text of a raw line is the line itself; the text of a
pre-tokenised line is its words joined by single spaces. Format characters (Unicode category
Cf, such as a byte-order mark) at the start of a line are removed on reading: they are invisible,
yet a word breaker or whitespace split would make a "word" of them, or glue them to the first.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from xlingbench.core.errors import UserError
from xlingbench.inputs.gettext_data import read_gettext
from xlingbench.inputs.gold_words import Span, locate_words
from xlingbench.inputs.segmentation import (Lines, icu_segmenter, icu_tokenizer_name, pretokenised, read_lines, spaced_lines,
                                            strip_leading_format)
from xlingbench.inputs.text_files import read_text

#: FLORES+ (CC BY-SA 4.0): the online data set of the papers' kind; append ``@<commit>`` to use it
FLORES_PLUS = "hf:openlanguagedata/flores_plus"
#: FLORES+ config names for the languages xlingbench is usually run on (others are passed as given)
_FLORES_CONFIGS = {
    "en": "eng_Latn", "de": "deu_Latn", "fr": "fra_Latn", "es": "spa_Latn", "ar": "arb_Arab",
    "ru": "rus_Cyrl", "zh": "cmn_Hans", "hi": "hin_Deva", "ja": "jpn_Jpan", "ko": "kor_Hang",
    "tr": "tur_Latn", "pt": "por_Latn", "it": "ita_Latn", "id": "ind_Latn", "th": "tha_Thai",
    "fi": "fin_Latn", "cs": "ces_Latn",
}


@dataclass
class ParallelCorpus:
    """Word-tokenised sentences per language; ``sentences[lang][i]`` are translations for each i.

    ``lines[lang]`` holds every line of the language as read, long ones included, and
    ``sentences[lang][i]`` is ``lines[lang].words[kept[i]]``. Word vectors are extracted from
    ``lines[lang]``, which depends on that language's text only, so one extraction serves every
    pair the language is in; rows are then picked by sentence id (``WordVectors.select(kept)``).
    A corpus built from words alone (``lines`` not given) reads them as pre-tokenised text.
    """

    languages: list[str]
    sentences: dict[str, list[list[str]]]
    fingerprint: str
    source: str
    word_tokenizer: str
    dropped_long: int
    lines: dict[str, Lines] = field(default_factory=dict)
    kept: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.lines:
            self.lines = {lang: spaced_lines(words) for lang, words in self.sentences.items()}
            self.kept = list(range(len(self)))
        if any(len(words) != len(self.kept) for words in self.sentences.values()):
            raise ValueError("ParallelCorpus: sentences and kept differ in length (use head() to cut a corpus)")

    def __len__(self) -> int:
        return len(self.sentences[self.languages[0]])

    @property
    def texts(self) -> dict[str, list[str]]:
        """The text of each aligned sentence, per language (``texts[lang][i]`` holds ``sentences[lang][i]``)."""
        return {lang: [self.lines[lang].texts[i] for i in self.kept] for lang in self.languages}

    @property
    def spans(self) -> dict[str, list[list[Span]]]:
        """Character span of each word of each aligned sentence in its text, per language."""
        return {lang: [self.lines[lang].spans[i] for i in self.kept] for lang in self.languages}

    def head(self, limit: int) -> "ParallelCorpus":
        """The first ``limit`` aligned sentences, with the lines up to the last of them (re-fingerprinted)."""
        kept = self.kept[:limit]
        read = kept[-1] + 1 if kept else 0
        lines = {lang: self.lines[lang].select(list(range(read))) for lang in self.languages}
        return _assemble(self.source, self.languages, lines, self.word_tokenizer, kept, read - len(kept))


def load_parallel(spec: str, languages: list[str], max_words: int = 300) -> ParallelCorpus:
    """Load ``languages`` from ``spec`` ("gettext", a path, or "hf:<id>@<revision>")."""
    languages = list(dict.fromkeys(languages))
    if len(languages) < 2:
        raise UserError(
            f"Parallel data needs at least 2 languages; got {languages}.",
            "Name two or more languages, e.g. --set calign.languages=en,de.",
        )
    if spec == "gettext":
        lines, tokenizer = read_gettext(languages)
    elif spec.startswith("hf:"):
        lines, tokenizer = _read_hub(spec, languages)
    else:
        lines, tokenizer = _read_local(Path(spec), languages)
    return _corpus(spec, languages, lines, tokenizer, max_words)


def _corpus(spec: str, languages: list[str], lines: dict[str, Lines], tokenizer: str, max_words: int) -> ParallelCorpus:
    """Drop over-long lines (every line stays in ``lines``), fingerprint what is kept."""
    keep = [i for i in range(len(lines[languages[0]])) if all(len(lines[l].words[i]) < max_words for l in languages)]
    return _assemble(spec, languages, lines, tokenizer, keep, len(lines[languages[0]]) - len(keep))


def _assemble(spec: str, languages: list[str], lines: dict[str, Lines], tokenizer: str, kept: list[int], dropped: int) -> ParallelCorpus:
    sentences = {lang: [lines[lang].words[i] for i in kept] for lang in languages}
    texts = {lang: [lines[lang].texts[i] for i in kept] for lang in languages}
    return ParallelCorpus(
        languages=languages, sentences=sentences, fingerprint=fingerprint(sentences, texts), source=spec,
        word_tokenizer=tokenizer, dropped_long=dropped, lines=lines, kept=kept,
    )


def fingerprint(sentences: dict[str, list[list[str]]], texts: dict[str, list[str]] | None = None) -> str:
    """sha256 over languages, lines, words and texts (separated, so boundaries count).

    The text is hashed too because the model reads it: the same words written with or without
    spaces between them give other vectors. Without ``texts``, the words joined by spaces.
    """
    digest = hashlib.sha256()
    for lang, lines in sentences.items():
        digest.update(f"\x00{lang}\x00".encode())
        for i, words in enumerate(lines):
            text = texts[lang][i] if texts is not None else " ".join(words)
            digest.update(("\t".join(words) + "\x00" + text + "\n").encode("utf-8"))
    return digest.hexdigest()


# ---------------------------------------------------------------- local files


def _read_local(path: Path, languages: list[str]) -> tuple[dict[str, Lines], str]:
    """A TSV file, a directory of per-language files, or a file-name prefix."""
    if path.is_file() and path.name.endswith(".tsv"):
        return _read_tsv(path, languages)
    files = {lang: _language_file(path, lang) for lang in languages}
    lines: dict[str, Lines] = {}
    kinds: dict[str, str] = {}
    for lang, file in files.items():
        tok = file.suffix == ".tok"
        raw = file.with_suffix(".txt")
        if tok and raw.is_file():
            lines[lang], kinds[lang] = _read_gold(raw, file)
            continue
        kinds[lang] = "whitespace (.tok)" if tok else icu_tokenizer_name()
        lines[lang] = read_lines(_text_lines(file), pretokenised if tok else icu_segmenter(lang))
    _check_lengths({lang: (str(files[lang]), len(lines[lang])) for lang in languages})
    return lines, _describe_tokenizers(kinds)


def _read_gold(raw: Path, tokenised: Path) -> tuple[Lines, str]:
    """The raw sentences of ``raw`` with the gold words of ``tokenised`` located in them, and how they were read."""
    texts, words = _text_lines(raw), _text_lines(tokenised)
    _check_lengths({"raw": (str(raw), len(texts)), "gold": (str(tokenised), len(words))})
    located = [locate_words(strip_leading_format(text), strip_leading_format(line).split()) for text, line in zip(texts, words)]
    lost = sum(line.lost for line in located)
    kind = f"gold words (.tok) located in the raw text (.txt), {lost} not located"
    return Lines([line.text for line in located], [line.words for line in located], [line.spans for line in located]), kind


def _language_file(path: Path, lang: str) -> Path:
    """The one file holding ``lang`` in a directory or under a prefix; .tok preferred over .txt."""
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        raise UserError(f"Parallel data {path} does not exist.", "Give a directory, a file prefix, a .tsv file, 'gettext' or 'hf:<id>@<revision>'.")
    for ext in (".tok", ".txt"):
        if path.is_dir():
            found = sorted(f for f in folder.iterdir() if f.name == f"{lang}{ext}" or f.name.endswith(f".{lang}{ext}"))
        else:
            found = [f for f in [folder / f"{path.name}.{lang}{ext}"] if f.is_file()]
        if len(found) > 1:
            raise UserError(
                f"Several files for language {lang!r} in {folder}: {[f.name for f in found]}.",
                f"Give a file prefix instead of the directory, e.g. {folder / found[0].name.split('.')[0]}.",
            )
        if found:
            return found[0]
    raise UserError(
        f"No file for language {lang!r} in {path} (looked for <name>.{lang}.tok and .txt).",
        "Add the file, or drop the language from the list.",
    )


def _text_lines(file: Path) -> list[str]:
    """Lines of a UTF-8 file without their line breaks; an empty, binary or non-UTF-8 file is a UserError naming it."""
    text = read_text(file, "parallel data file", "Give a UTF-8 text file with one sentence a line.")
    lines = text.replace("\r\n", "\n").split("\n")  # a file saved on Windows reads as the same sentences
    while lines and not lines[-1].strip():  # blank lines at the end are no sentences (an editor's trailing newlines)
        lines.pop()
    return lines


def _read_tsv(path: Path, languages: list[str]) -> tuple[dict[str, Lines], str]:
    """One column per language; the header row names them."""
    header, *rows = _text_lines(path)
    header = strip_leading_format(header)
    columns = [c.strip() for c in header.split("\t")]
    if not rows:
        raise UserError(f"Parallel data file {path} has a header row but no sentences.", "Add one row per sentence.")
    for lang in languages:
        if lang not in columns:
            raise UserError(f"Language {lang!r} is not a column of {path} (columns: {columns}).", "Add the column, or drop the language.")
    tok = path.name.endswith(".tok.tsv")
    fields: dict[str, list[str]] = {lang: [] for lang in languages}
    for number, row in enumerate(rows, start=2):
        values = row.rstrip("\r").split("\t")
        if len(values) != len(columns):
            raise UserError(f"{path} line {number} has {len(values)} fields; the header has {len(columns)}.", "Fix that line (tabs inside a sentence are not allowed).")
        for lang in languages:
            fields[lang].append(values[columns.index(lang)])
    lines = {lang: read_lines(fields[lang], pretokenised if tok else icu_segmenter(lang)) for lang in languages}
    return lines, "whitespace (.tok)" if tok else icu_tokenizer_name()


def _check_lengths(counts: dict[str, tuple[str, int]]) -> None:
    """Every language must have the same number of lines: they are aligned by line."""
    if len({n for _, n in counts.values()}) > 1:
        listing = ", ".join(f"{lang}: {n} lines in {where}" for lang, (where, n) in counts.items())
        raise UserError(f"Parallel data is not line-aligned ({listing}).", "Give files with one translation per line and the same number of lines.")


def _describe_tokenizers(kinds: dict[str, str]) -> str:
    """One name when all languages were split alike, else one per language."""
    if len(set(kinds.values())) == 1:
        return next(iter(kinds.values()))
    return "; ".join(f"{lang}: {kind}" for lang, kind in kinds.items())


# ---------------------------------------------------------------- Hugging Face datasets


def _read_hub(spec: str, languages: list[str]) -> tuple[dict[str, Lines], str]:
    """``hf:<id>@<revision>[#split]``: one config per language, a ``text`` column, rows sorted by id."""
    target, _, split = spec[3:].partition("#")
    dataset_id, _, revision = target.partition("@")
    if not dataset_id or not revision:
        raise UserError(f"Hub data set {spec!r} has no pinned revision.", f"Write it as {FLORES_PLUS}@<commit hash>.")
    from datasets import load_dataset

    lines: dict[str, Lines] = {}
    for lang in languages:
        config = _FLORES_CONFIGS.get(lang, lang) if dataset_id == FLORES_PLUS[3:] else lang
        try:
            rows = load_dataset(dataset_id, config, split=split or "devtest", revision=revision)
        except Exception as exc:  # the datasets library raises many types for "cannot get it"
            raise UserError(
                f"Could not load {dataset_id}@{revision} config {config!r} for language {lang!r} ({type(exc).__name__}: {exc}).",
                "This needs the Hugging Face Hub (network, and for FLORES+ an accepted licence and HF_TOKEN); offline, use 'gettext' or local files.",
            ) from exc
        if "id" in rows.column_names:
            rows = rows.sort("id")
        lines[lang] = read_lines(list(rows["text"]), icu_segmenter(lang))
    _check_lengths({lang: (f"{dataset_id} {lang}", len(lines[lang])) for lang in languages})
    return lines, icu_tokenizer_name()


def corpus_summary(corpus: ParallelCorpus) -> dict[str, int]:
    """Lines and words per language (for logs and the report)."""
    return {"lines": len(corpus), **{f"words/{lang}": sum(map(len, lines)) for lang, lines in corpus.sentences.items()}}
