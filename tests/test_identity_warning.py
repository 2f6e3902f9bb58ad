"""The one-line warning when a headline's peak layer is dominated by context (docs/tasks.md, the
CALIGN/COLAP control): it reads the *context-bound* share, the diagnostic the control is built on.

Planted: message families (sentences that open with one word) cluster together at layer 1 while no
single sentence holds more than a sixth of a cluster, so the one-sentence share is 0 and only the
context-bound share (100%) can see them: every headline's warning must fire. Planted cross-lingual
concepts drawn from sentences that open in many ways: no warning."""
from __future__ import annotations

import pytest

from tests.test_concepts import FamilyRepresentations, planted_task  # noqa: F401 (planted_task is a fixture)
from xlingbench.inputs.cache import Cache
from xlingbench.tasks.latent_concepts import identity_warning

HEADLINES = {"calign": ("calign_max", "calign_controlled_max"), "colap": ("colap_max", "colap_controlled_max")}


def _warned(warnings: list[str], name: str) -> bool:
    return any(w.startswith(f"{name}=") and "context-bound" in w for w in warnings)


def test_identity_warning_reads_the_share_at_the_peak_layer() -> None:
    series = [(0, 10.0), (3, 40.0), (6, 20.0)]
    assert identity_warning("x_max", series, [(0, 90.0), (3, 60.0), (6, 90.0)]) == [
        "x_max=40.00 peaks at layer 3, where 60% of the concepts are context-bound (one sentence, or sentences "
        "opening with one word, hold most of their occurrences): there the paper's number measures context, "
        "not shared concepts (the controlled headline leaves them out)."]
    assert identity_warning("x_max", series, [(0, 90.0), (3, 50.0), (6, 90.0)]) == []  # exactly half is not "more than half"
    assert identity_warning("x_max", [], []) == []


def _runs(inputs, tmp_path, calign_params: dict, colap_params: dict) -> dict:
    import xlingbench.tasks.calign as calign_task
    import xlingbench.tasks.colap as colap_task

    return {"calign": calign_task.run(inputs(calign_task), calign_task.Params(**calign_params)),
            "colap": colap_task.run(inputs(colap_task), colap_task.Params(**colap_params))}


def test_message_families_at_the_peak_layer_warn_on_every_headline(tmp_path) -> None:
    muse = tmp_path / "en-de.txt"
    muse.write_text("".join(f"e{k}_{i} g{k}_{i}\n" for k in range(60) for i in range(1, 12)) + "".join(f"open{f} auf{f}\n" for f in range(10)))
    families = FamilyRepresentations(Cache(tmp_path / "cache"))
    results = _runs(lambda task: families, tmp_path, {"dictionary": str(muse), "k": 10, "n_init": 3, "layers": "1", "min_types": 5},
                    {"k": 10, "n_init": 3, "layers": "1"})
    for task, result in results.items():
        # the one-sentence share cannot see the families: a warning fed by it would stay silent
        assert dict(result.step_metrics["one_sentence_concepts"])[1] == 0.0, task
        assert dict(result.step_metrics["context_bound_concepts"])[1] == 100.0, task
        assert dict(result.step_metrics["context_bound_concepts_paper"])[1] == 100.0, task
        for name in HEADLINES[task]:
            assert _warned(result.info["warnings"], name), (task, name, result.info["warnings"])


def test_concepts_spanning_many_contexts_do_not_warn(planted_task, tmp_path) -> None:  # noqa: F811
    patch, corpus = planted_task
    muse = tmp_path / "en-de.txt"
    muse.write_text("".join(f"e{w[1:]} g{w[1:]}\n" for w in sorted({w for s in corpus.sentences["en"] for w in s})))
    results = _runs(patch, tmp_path, {"dictionary": str(muse), "k": 30, "n_init": 3, "layers": "1"}, {"k": 30, "n_init": 3, "layers": "1"})
    for task, result in results.items():
        assert result.metrics[f"{task}_controlled_max"] > 60, task  # the clean case is scored, not empty
        assert dict(result.step_metrics["context_bound_concepts_paper"])[1] == 0.0, task
        assert not any(_warned(result.info["warnings"], name) for name in HEADLINES[task]), result.info["warnings"]
