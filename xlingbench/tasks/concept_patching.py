"""Task 6, concept patching: does a concept's representation, taken from prompts in other
languages, make a decoder translate that concept (Dumas et al. 2025, "Separating Tongue from
Thought"; Körner et al. 2026, "When Meanings Meet"; docs/tasks.md, task 6)?

For each target language pair (``en-fr``: translate from English into French) and each seeded
pair of concepts (source, target) that share no answer token: the target prompt asks to
translate the target concept; the source concept's latent (the residual state at the last token
of its word, averaged over the setting's source prompts) overwrites the target word's last
token at states j..L-1, one run per j. Success at j is the next-token probability mass on the
source concept's word in the output language (every token that can begin it). Settings name where
the source latents come from: ``tgt`` (the target pair itself), ``seen`` (pairs of other
languages, English excluded: the language-agnostic test), ``en_en`` (English copying prompts);
``unpatched`` is the target prompt as it is.

Headline: ``success_max``, the best state's mean success of the ``seen`` setting over language
pairs and concept pairs: latents that never saw the input or the output language can only move
the answer through a shared concept. ``last_half_state`` (the last first-patched state whose
success still reaches half of it) says how late the concept is still read from the word's
position: patches from j..L-1 succeed while j is early, so the fall, not the rise, is what moves.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from xlingbench.compute.patching import Patched, bootstrap_interval, mass, patch_runs
from xlingbench.core.errors import UserError
from xlingbench.core.progress import progress
from xlingbench.core.task import Chart, Task, TaskMetadata, TaskResult
from xlingbench.inputs.concept_words import load_concept_words
from xlingbench.tasks.patching_prompts import PromptBuilder, choose, concept_pairs

if TYPE_CHECKING:
    from xlingbench.inputs.representations import Representations

SETTINGS = ("tgt", "seen", "en_en")
HEADLINE_SETTING = "seen"
_PAIR = re.compile(r"^[a-z]{2,3}-[a-z]{2,3}$")


@dataclass
class Params:
    """Parameters of ``concept_patching`` (``--set concept_patching.<name>=<value>``)."""

    words: str = "cldr"  # "cldr" (frozen, offline) or a table with a header of language codes
    pairs: list[str] = field(default_factory=lambda: ["en-fr", "en-de", "de-en", "zh-en", "fr-zh", "ru-es"])
    concept_pairs: int = 6  # (source, target) concept pairs per language pair: the CPU cost is linear in it
    shots: int = 5  # demonstrations in every prompt
    seen_pairs: int = 2  # language pairs (other languages, no English) averaged in the seen setting
    generate: int = 4  # greedy tokens written in the generations table (0: none)
    examples: int = 1  # concept pairs per language pair whose generations are tabled
    generate_every: int = 3  # ... at every this many first patched states (0, 3, 6...) and unpatched
    seed: int = 20  # demonstrations, concept pairs, seen pairs, bootstrap
    batch_size: int = 8  # source prompts read at once

    def validate(self) -> None:
        """Language pairs such as en-fr, positive counts, and a word list that exists."""
        bad = [p for p in self.pairs if not _PAIR.match(p) or p[:p.index("-")] == p[p.index("-") + 1:]]
        if not self.pairs or bad:
            raise ValueError(f"pairs={','.join(self.pairs)}: {bad[0] if bad else 'empty'!r} is not a pair of two languages such as en-fr")
        for name in ("concept_pairs", "shots", "seen_pairs", "batch_size", "generate_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be 1 or more")
        if self.generate < 0 or self.examples < 0:
            raise ValueError(f"generate={self.generate} and examples={self.examples} must be 0 or more")
        if self.words != "cldr" and not Path(self.words).is_file():
            raise ValueError(f"words={self.words!r} is not 'cldr' or an existing file")


def run(inputs: "Representations", params: Params) -> TaskResult:
    """Adapter: concepts -> seeded pairs -> source latents (cached) -> patched runs -> masses."""
    model = inputs.causal_lm  # refuses an encoder before any other work
    words = load_concept_words(params.words)
    builder, pairs, skipped = _plan_languages(inputs, words, params)
    sources = _source_pairs(pairs, builder, words.languages, params)
    read_pairs = sorted({lp for settings in sources.values() for lps in settings.values() for lp in lps})
    languages = sorted({lang for p in [*pairs, *read_pairs] for lang in p})
    demos, candidates = choose(words, languages, params.shots, params.seed)
    builder.demos = demos
    answers = {c: {lang: builder.answers(c, lang) for lang in languages} for c in candidates}
    chosen = concept_pairs({c: {i for ids in a.values() for i in ids} for c, a in answers.items()},
                           params.concept_pairs, params.seed)
    if not chosen:
        raise UserError(f"no two concepts of {words.source} share no answer token in {', '.join(languages)}.",
                        "Use a larger word list (--set concept_patching.words=FILE) or fewer language pairs.")
    identity = {"task": "concept_patching", "words": words.fingerprint, "demos": demos}
    latents = {lp: inputs.residual_states(*_source_prompts(builder, [s for s, _ in chosen], lp), identity=identity,
                                          batch_size=params.batch_size) for lp in read_pairs}
    num_states = next(iter(latents.values())).shape[1] - 1  # L: patches start at states 0..L-1
    scored = [_score_pair(model, builder, pair, chosen, sources[pair], latents, answers, num_states, params)
              for pair in progress(pairs, desc="concept_patching: language pairs", total=len(pairs), unit="pair")]
    return _result(scored, params, {"inputs": {"words": words.fingerprint}, "words": {**words.info, "source": words.source},
                                    "languages": languages, "demonstrations": demos, "concept_pairs": chosen,
                                    "pairs_skipped": skipped, "sources": {"-".join(p): s for p, s in sources.items()},
                                    "states": f"0..{num_states - 1} (0 = input of the first decoder layer)"})


def _plan_languages(inputs: "Representations", words: Any, params: Params) -> tuple[PromptBuilder, list[tuple[str, str]], list[str]]:
    """The prompt builder and the asked pairs whose languages the data and the tokenizer cover."""
    builder = PromptBuilder(inputs.tokenizer, words, [])
    covered = {lang for lang in words.languages if builder.covers(lang)}
    asked = [tuple(p.split("-")) for p in params.pairs]
    pairs = [p for p in asked if set(p) <= covered]
    if not pairs:
        raise UserError(f"none of the pairs {', '.join(params.pairs)} is in both the concept words and {inputs.model_id}'s tokenizer "
                        f"(covered: {', '.join(sorted(covered))}).", "Choose pairs of those languages (--set concept_patching.pairs=en-fr,...).")
    return builder, pairs, ["-".join(p) for p in asked if p not in pairs]


def _source_pairs(pairs: list[tuple[str, str]], builder: PromptBuilder, languages: list[str],
                  params: Params) -> dict[tuple[str, str], dict[str, list[tuple[str, str]]]]:
    """Per target pair, per setting, the language pairs whose source latents are averaged."""
    covered = [lang for lang in languages if builder.covers(lang)]
    rng = np.random.default_rng(params.seed)
    found = {}
    for a, b in pairs:
        others = [(x, y) for x in covered for y in covered if x != y and not {x, y} & {a, b, "en"}]
        seen = [others[i] for i in sorted(rng.choice(len(others), size=min(params.seen_pairs, len(others)), replace=False))] if others else []
        settings = {"tgt": [(a, b)], "seen": seen, "en_en": [("en", "en")] if "en" in covered else []}
        found[(a, b)] = {name: lps for name, lps in settings.items() if lps}
    return found


def _source_prompts(builder: PromptBuilder, concepts: list[str], pair: tuple[str, str]) -> tuple[list, list]:
    prompts = [builder.source(c, *pair) for c in concepts]
    return [p.ids for p in prompts], [p.position for p in prompts]


@dataclass
class PairScores:
    """One target language pair: masses per setting, state and concept pair; generations."""

    pair: str
    success: dict[str, np.ndarray]  # setting -> (concept pairs, states); "unpatched" -> (concept pairs, 1)
    target: dict[str, np.ndarray]
    source_baseline: np.ndarray  # the source concept's own prompt, unpatched: the ceiling
    generations: list[dict[str, Any]]


def _score_pair(model: Any, builder: PromptBuilder, pair: tuple[str, str], chosen: list[tuple[str, str]],
                settings: dict[str, list[tuple[str, str]]], latents: dict, answers: dict, num_states: int,
                params: Params) -> PairScores:
    """Every concept pair of one language pair: one batched patched run per target prompt."""
    a, b = pair
    names = list(settings)
    success = {n: [] for n in [*names, "unpatched"]}
    target = {n: [] for n in [*names, "unpatched"]}
    baseline, generations = [], []
    for k, (s, t) in enumerate(chosen):
        prompt = builder.target(t, a, b)
        source_prompt = builder.target(s, a, b)
        if prompt is None or source_prompt is None:
            continue
        rows = np.concatenate([np.repeat(np.mean([latents[lp][k] for lp in settings[n]], axis=0)[None], num_states, axis=0)
                               for n in names] + [np.zeros((1,) + latents[settings[names[0]][0]].shape[1:], np.float32)])
        starts = [j for _ in names for j in range(num_states)] + [num_states + 1]
        out = patch_runs(model, prompt.ids, prompt.position, rows, starts)
        ok, wrong = mass(out.probs, answers[s][b]), mass(out.probs, answers[t][b])
        for i, n in enumerate([*names, "unpatched"]):
            success[n].append(ok[i * num_states: (i + 1) * num_states])
            target[n].append(wrong[i * num_states: (i + 1) * num_states])
        baseline.append(mass(patch_runs(model, source_prompt.ids, source_prompt.position, None, [num_states + 1]).probs, answers[s][b])[0])
        if k < params.examples and params.generate:
            shown = [i for i, j in enumerate(starts) if j % params.generate_every == 0 or j > num_states]
            written = patch_runs(model, prompt.ids, prompt.position, rows[shown], [starts[i] for i in shown], params.generate)
            generations += _generation_rows(builder, pair, (s, t), [(_setting(i, names, num_states), starts[i]) for i in shown],
                                            written, ok[shown])
    return PairScores(pair=f"{a}-{b}", success={n: np.array(v) for n, v in success.items()},
                      target={n: np.array(v) for n, v in target.items()}, source_baseline=np.array(baseline), generations=generations)


def _setting(row: int, names: list[str], num_states: int) -> str:
    """The setting of row ``row`` of a patched batch (the last row is the unpatched run)."""
    return names[row // num_states] if row < len(names) * num_states else "unpatched"


def _generation_rows(builder: PromptBuilder, pair: tuple[str, str], concepts: tuple[str, str], rows: list[tuple[str, int]],
                     out: Patched, ok: np.ndarray) -> list[dict[str, Any]]:
    """The greedy continuation of each (setting, first patched state) row, copy and homograph cases flagged."""
    (a, b), (s, t), w = pair, concepts, builder.words.words
    found = []
    for (setting, start), generated, success in zip(rows, out.generated, ok):
        text = builder.tokenizer.decode(generated, skip_special_tokens=True)
        found.append({"pair": f"{a}-{b}", "setting": setting, "state": start if setting != "unpatched" else -1,
                      "source_concept": s, "target_concept": t, "target_word": w[t][a], "expected": w[s][b],
                      "output": text, "success_mass": float(success), "correct": _says(text, w[s][b]),
                      "copy": _says(text, w[t][a]), "homograph": w[s][a] == w[s][b] or w[t][a] == w[t][b]})
    return found


def _says(text: str, word: str) -> bool:
    """Whether a generation answers ``word``: its text up to the closing quotation mark is the word,
    or, cut by the token limit before any quotation mark, it is a beginning of the word."""
    answer, closed, _ = text.partition('"')
    answer = answer.strip()
    return answer == word if closed else bool(answer) and word.startswith(answer)


def _result(scored: list[PairScores], params: Params, info: dict[str, Any]) -> TaskResult:
    """Step metrics per setting and pair, the headline with its bootstrap interval, tables."""
    metrics: dict[str, float] = {}
    steps: dict[str, list[tuple[int, float]]] = {}
    intervals: dict[str, tuple[float, float]] = {}
    per_state = []
    names = [n for n in [*SETTINGS, "unpatched"] if all(n in p.success for p in scored)]
    num_states = scored[0].success[names[0]].shape[1]
    for name in names:
        curves = {p.pair: _curve(p.success[name], num_states) for p in scored}
        targets = {p.pair: _curve(p.target[name], num_states) for p in scored}
        mean = np.mean(list(curves.values()), axis=0)
        steps[f"success/{name}"] = [(j, float(v)) for j, v in enumerate(mean)]
        steps[f"target_mass/{name}"] = [(j, float(v)) for j, v in enumerate(np.mean(list(targets.values()), axis=0))]
        for pair, curve in curves.items():
            steps[f"success/{name}/{pair}"] = [(j, float(v)) for j, v in enumerate(curve)]
            per_state += [{"pair": pair, "setting": name, "state": j, "success": float(v), "target_mass": float(targets[pair][j])}
                          for j, v in enumerate(curve)]
        best = int(np.argmax(mean))
        metrics[f"success_max/{name}"] = float(mean[best])
        metrics[f"success_max_state/{name}"] = best
        pooled = np.concatenate([_padded(p.success[name], num_states)[:, best] for p in scored])
        intervals[f"success_max/{name}"] = bootstrap_interval(pooled, params.seed)
    head = HEADLINE_SETTING if HEADLINE_SETTING in names else names[0]
    metrics["success_max"] = metrics[f"success_max/{head}"]
    intervals["success_max"] = intervals[f"success_max/{head}"]
    curve = [v for _, v in steps[f"success/{head}"]]
    metrics["last_half_state"] = float(max(j for j, v in enumerate(curve) if v >= metrics["success_max"] / 2))
    for p in scored:
        metrics[f"source_baseline/{p.pair}"] = float(p.source_baseline.mean()) if len(p.source_baseline) else float("nan")
        metrics[f"concept_pairs/{p.pair}"] = len(p.source_baseline)
    metrics["source_baseline"] = float(np.nanmean([metrics[f"source_baseline/{p.pair}"] for p in scored]))
    generations = [g for p in scored for g in p.generations]
    for flag in ("copy", "homograph", "correct"):
        metrics[f"generations_{flag}"] = float(np.mean([g[flag] for g in generations])) if generations else 0.0
    info["headline_setting"] = head
    return TaskResult(task="concept_patching", params=asdict(params), metrics=metrics, step_metrics=steps, intervals=intervals,
                      tables={"per_state": per_state, "generations": generations}, info=info)


def _padded(values: np.ndarray, num_states: int) -> np.ndarray:
    """(concept pairs, states): the unpatched run's one column repeated over the states."""
    return np.repeat(values, num_states, axis=1) if values.shape[1] == 1 else values


def _curve(values: np.ndarray, num_states: int) -> np.ndarray:
    """Mean over concept pairs per state (the unpatched baseline is flat)."""
    return _padded(values, num_states).mean(axis=0)


TASK = Task(
    metadata=TaskMetadata(
        name="concept_patching",
        description="Next-token probability of a concept's translation after its residual state, taken from prompts in "
        "other languages, is patched into a translation prompt about another word, per starting state (best mean over "
        "language pairs, latents from other languages).",
        reference="Dumas et al. 2025, Separating Tongue from Thought (ACL; arXiv 2411.08745); Körner, Müller-Eberstein, "
        "Korhonen & Plank 2026, When Meanings Meet (EACL); metric defined in xlingbench docs/tasks.md",
        main_score="success_max",
        version="1",
        options=("seed",),
        archs=("decoder",),
        default=False,
        charts=tuple(Chart(name=f"success_{n}_by_state", kind="line", metric=f"success/{n}",
                           title=f"Concept patching success, {n} latents" if n != "unpatched" else "Unpatched baseline",
                           xlabel="first patched state", ylabel="P(source concept)") for n in (*SETTINGS, "unpatched")),
    ),
    params=Params,
    run=run,
)
