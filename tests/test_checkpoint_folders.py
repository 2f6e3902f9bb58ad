"""A training run's output folder: which subfolders are checkpoints, their steps, and which are whole."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from xlingbench.core.errors import UserError
from xlingbench.inputs.checkpoints import checkpoint_specs, discover, incomplete, is_run_folder, name_step, partial_safetensors, run_name
from xlingbench.inputs.registry import resolve_model


def write_checkpoint(folder: Path, rows: int = 4, state_step: int | None = None) -> Path:
    """A folder with config.json and a whole model.safetensors (and trainer_state.json when ``state_step``)."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    save_file({"embeddings.weight": torch.zeros(rows, 3), "bias": torch.ones(2)}, str(folder / "model.safetensors"))
    if state_step is not None:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": state_step}))
    return folder


@pytest.mark.parametrize(("name", "step"), [("checkpoint-500", 500), ("step_2000", 2000), ("step300", 300),
                                            ("global_step40", 40), ("iter_0001000", 1000), ("checkpoint-best", None),
                                            ("runs", None), ("xcheckpoint-5", None), ("step_", None), ("tmp-checkpoint-7", None)])
def test_checkpoint_names_of_common_trainers(name, step):
    assert name_step(name) == step


def test_checkpoints_come_in_step_order_not_name_order(tmp_path):
    for name in ("checkpoint-1000", "checkpoint-500", "checkpoint-50"):
        write_checkpoint(tmp_path / name)
    (tmp_path / "runs").mkdir()  # Trainer's TensorBoard folder: not a checkpoint
    found = discover(tmp_path)
    assert [(c.path.name, c.step) for c in found.checkpoints] == [("checkpoint-50", 50), ("checkpoint-500", 500), ("checkpoint-1000", 1000)]
    assert found.skipped == []


def test_trainer_state_global_step_decides(tmp_path):
    write_checkpoint(tmp_path / "step_3", state_step=3000)
    assert [c.step for c in discover(tmp_path).checkpoints] == [3000]


def test_a_safetensors_file_being_written_is_partial(tmp_path):
    whole = write_checkpoint(tmp_path / "checkpoint-1") / "model.safetensors"
    data = whole.read_bytes()
    assert partial_safetensors(whole) == ""
    for cut in (4, 20, len(data) - 1):  # inside the length, inside the header, inside the last tensor
        part = tmp_path / f"cut{cut}.safetensors"
        part.write_bytes(data[:cut])
        assert "partial" in partial_safetensors(part), cut
    longer = tmp_path / "longer.safetensors"
    longer.write_bytes(data + b"\0")
    assert "partial" in partial_safetensors(longer)


def test_incomplete_folders_are_skipped_with_their_reason(tmp_path):
    write_checkpoint(tmp_path / "checkpoint-100")
    (tmp_path / "checkpoint-200").mkdir()  # just created
    only_config = tmp_path / "checkpoint-300"
    only_config.mkdir()
    (only_config / "config.json").write_text("{}")
    cut = write_checkpoint(tmp_path / "checkpoint-400") / "model.safetensors"
    cut.write_bytes(cut.read_bytes()[:-5])
    sharded = write_checkpoint(tmp_path / "checkpoint-500")
    (sharded / "model.safetensors").rename(sharded / "model-00001-of-00002.safetensors")
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "embeddings.weight": "model-00001-of-00002.safetensors", "bias": "model-00002-of-00002.safetensors"}}))
    found = discover(tmp_path)
    assert [c.step for c in found.checkpoints] == [100]
    assert len(found.skipped) == 4
    reasons = "\n".join(found.skipped)
    assert "checkpoint-200: no config.json" in reasons and "checkpoint-300: no safetensors weights" in reasons
    assert "checkpoint-400: model.safetensors is partial" in reasons and "model-00002-of-00002.safetensors is not there" in reasons
    assert incomplete(tmp_path / "checkpoint-100") == ""


def test_a_run_folder_is_one_model_whose_checkpoints_are_its_revisions(tmp_path, caplog):
    run = tmp_path / "my-run"
    for step in (20, 10):
        write_checkpoint(run / f"checkpoint-{step}")
    (run / "checkpoint-30").mkdir()
    spec = resolve_model(str(run))
    assert is_run_folder(spec)
    with caplog.at_level("WARNING"):
        specs = checkpoint_specs(spec)
    assert [(s.name, Path(s.hub_id).name, step) for s, step in specs] == [("my-run", "checkpoint-10", 10), ("my-run", "checkpoint-20", 20)]
    assert [r.getMessage() for r in caplog.records] == [f"skipped {run / 'checkpoint-30'}: no config.json yet (being written?)"]
    assert {s.name for s, _ in checkpoint_specs(spec, "renamed")} == {"renamed"}
    one = resolve_model(str(run / "checkpoint-20"))  # one checkpoint folder: a point of its run's trajectory
    assert is_run_folder(one) and [(s.name, step) for s, step in checkpoint_specs(one)] == [("my-run", 20)]
    assert run_name(run / "checkpoint-20") == "my-run"


def test_a_saved_model_is_not_a_run_folder_and_an_empty_run_is_refused(tmp_path):
    saved = write_checkpoint(tmp_path / "model")
    assert not is_run_folder(resolve_model(str(saved)))
    empty = tmp_path / "out"
    (empty / "checkpoint-5").mkdir(parents=True)
    with pytest.raises(UserError, match=r"holds no complete checkpoint folder \(skipped .*checkpoint-5: no config.json"):
        checkpoint_specs(resolve_model(str(empty)))


def test_two_folders_of_one_step_are_refused(tmp_path):
    write_checkpoint(tmp_path / "checkpoint-5")
    write_checkpoint(tmp_path / "step_5")
    with pytest.raises(UserError, match="several checkpoints of step 5"):
        discover(tmp_path)

