"""Prompts, answer tokens and seeded concept pairs of the concept-patching task.

Why its own module: the task module runs the model and scores; this one decides *what* is run,
from the concept words and the tokenizer alone, so a test can check the choices (disjoint
tokens, a deterministic seed, the word's last token) without a model.

Prompts follow Dumas et al. and Körner et al.: ``shots`` word-translation demonstrations
``Français: "fleur" - Deutsch: "Blume"`` a line, then ``<L_in>: "<word>" - <L_out>: "``, each
language named in its own language. A source prompt is cut right after its word (its latent is
the residual state at the word's last token); a target prompt is patched at its word's last token.
The demonstrations are ``shots`` concepts drawn once by the seed and kept out of the pairs, the
same in every prompt, so one concept's source latent does not depend on the pair it serves in
and is cached once per language pair.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from xlingbench.compute.patching import answer_ids
from xlingbench.compute.surface import strip_markers
from xlingbench.inputs.concept_words import ConceptWords


@dataclass(frozen=True)
class Prompt:
    """Token ids of a prompt and the position of its word's last token."""

    ids: tuple[int, ...]
    position: int
    text: str


class PromptBuilder:
    """Builds the prompts and answer-token sets of one run (one tokenizer, one set of demonstrations)."""

    def __init__(self, tokenizer: Any, words: ConceptWords, demos: Sequence[str]) -> None:
        self.tokenizer, self.words, self.demos = tokenizer, words, list(demos)
        self._by_surface: dict[str, list[int]] | None = None

    def head(self, concept: str, source: str, target: str) -> str:
        """The prompt up to and including the word of ``concept`` in ``source``."""
        names, w = self.words.names, self.words.words
        lines = [f'{names[source]}: "{w[d][source]}" - {names[target]}: "{w[d][target]}"\n' for d in self.demos]
        return "".join(lines) + f'{names[source]}: "{w[concept][source]}'

    def source(self, concept: str, source: str, target: str) -> Prompt:
        """The source prompt: cut after the word; the latent is read at its last token."""
        text = self.head(concept, source, target)
        ids = tuple(self.tokenizer(text).input_ids)
        return Prompt(ids=ids, position=len(ids) - 1, text=text)

    def target(self, concept: str, source: str, target: str) -> Prompt | None:
        """The full translation prompt, or None when the tokenizer merges the word's last token
        with the closing quotation mark (there is then no token of the word alone to patch)."""
        head = self.source(concept, source, target)
        text = head.text + f'" - {self.words.names[target]}: "'
        ids = tuple(self.tokenizer(text).input_ids)
        return Prompt(ids=ids, position=head.position, text=text) if ids[: len(head.ids)] == head.ids else None

    def answers(self, concept: str, language: str) -> list[int]:
        """Token ids that can begin the concept's word in ``language`` (see ``answer_ids``)."""
        word = self.words.words[concept][language]
        encodings = (self._encode(word), self._encode(" " + word))
        # a bare space token (a tokenizer that splits " word" as " " + "word") begins every word: never an answer
        first = [ids[0] for ids in encodings if ids and self.tokenizer.decode(ids[:1]).strip()]
        return answer_ids(word, self.by_surface, first)

    @property
    def by_surface(self) -> dict[str, list[int]]:
        """Token text without its word-start marker -> token ids (built once per run)."""
        if self._by_surface is None:
            tokens = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
            found: dict[str, list[int]] = {}
            special = set(self.tokenizer.all_special_ids)
            for i, tok in enumerate(tokens):
                if tok is not None and i not in special:
                    found.setdefault(strip_markers(tok), []).append(i)
            found.pop("", None)
            self._by_surface = found
        return self._by_surface

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def covers(self, language: str) -> bool:
        """Whether the tokenizer spells every word of ``language`` without its unknown token."""
        unk = self.tokenizer.unk_token_id
        return unk is None or all(unk not in self._encode(w[language]) for w in self.words.words.values() if language in w)


def choose(words: ConceptWords, languages: Sequence[str], shots: int, seed: int) -> tuple[list[str], list[str]]:
    """(demonstrations, candidates): ``shots`` concepts named in every language drawn by ``seed``,
    and the other concepts named in every language, in file order."""
    named = [c for c, w in words.words.items() if all(lang in w for lang in languages)]
    if len(named) < shots + 2:
        raise ValueError(f"only {len(named)} concepts are named in all of {', '.join(languages)}; "
                         f"{shots} demonstrations and one pair need {shots + 2}")
    picked = set(np.random.default_rng(seed).choice(len(named), size=shots, replace=False).tolist())
    return [named[i] for i in sorted(picked)], [c for i, c in enumerate(named) if i not in picked]


def concept_pairs(tokens: dict[str, set[int]], count: int, seed: int) -> list[tuple[str, str]]:
    """Up to ``count`` (source, target) pairs of concepts sharing no answer token in any language
    (``tokens``: concept -> the union of its answer ids), each concept at most once as a source
    and once as a target, in an order drawn by ``seed``."""
    names = list(tokens)
    order = np.random.default_rng(seed).permutation(len(names) * len(names)).tolist()
    used_source: set[str] = set()
    used_target: set[str] = set()
    pairs = []
    for flat in order:
        s, t = names[flat // len(names)], names[flat % len(names)]
        if s == t or s in used_source or t in used_target or tokens[s] & tokens[t]:
            continue
        pairs.append((s, t))
        used_source.add(s)
        used_target.add(t)
        if len(pairs) == count:
            break
    return pairs
