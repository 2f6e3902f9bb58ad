"""Issue 23: one canonical digest for every key, the resolved dtype and the device kind in them.

The device kind is in the concepts cache key and in every fingerprint (K-means draws its random
numbers on the device, so a GPU's concepts are not a CPU's); a board shown a CPU run and a faked
GPU run of one model never puts them in one cell.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import fake_inputs
from xlingbench.core import identity
from xlingbench.core.task import ModelRevision, Outcome, TaskMetadata, TaskResult
from xlingbench.inputs.cache import cache_key
from xlingbench.leaderboard.collect import board_of
from xlingbench.leaderboard.view import build_view
from xlingbench.sinks import SinkSettings
from xlingbench.sinks.json_sink import JsonSink
from xlingbench.sinks.json_store import JsonStore

META = TaskMetadata(name="calign", description="", reference="", main_score="calign_max", version="1")


def test_the_digest_is_canonical_and_refuses_what_json_is_not() -> None:
    assert identity.digest({"a": 1, "b": [1, "x"]}) == identity.digest({"b": [1, "x"], "a": 1})
    assert identity.digest({"a": (1, 2)}) == identity.digest({"a": [1, 2]})  # a tuple is a JSON list
    assert identity.digest({"a": 1}) != identity.digest({"a": 1.5})
    for bad, error in ((Path("x"), TypeError), (np.float32(1.0), TypeError), (float("nan"), ValueError), ({1: "x"}, TypeError)):
        with pytest.raises(error):
            identity.digest({"nested": [{"value": bad}]})
    assert cache_key({"k": 1}) == identity.digest({"k": 1}, identity.CACHE_KEY_LENGTH)  # one digest for every key


def test_the_task_key_and_the_fingerprint_hold_the_resolved_dtype_and_the_device_kind() -> None:
    key = lambda dtype, device, meta=META: identity.task_key("m", "r" * 40, None, meta, {"k": 3}, dtype, device)  # noqa: E731
    assert key("float32", "cpu") != key("float32", "cuda") == key("float32", "cuda:1")
    assert key("float32", "cpu") != key("bfloat16", "cpu")
    still = TaskMetadata(name="calign", description="", reference="", main_score="calign_max", version="1", device_independent=True)
    assert key("float32", "cpu", still) == key("float32", "cuda", still)
    print_ = lambda device: identity.fingerprint(META, {"k": 3}, {"corpus": "abc"}, "float32", device, "15.0.0")  # noqa: E731
    assert print_("cpu") != print_("cuda") and print_("cpu") == print_("cpu")


def test_the_concepts_key_differs_between_cpu_and_a_faked_cuda_device(tmp_path: Path, monkeypatch) -> None:
    import xlingbench.compute.kmeans as kmeans_module

    class Labels:
        def __init__(self, n: int) -> None:
            self.labels = np.arange(n) % 2

    seen = []
    monkeypatch.setattr(kmeans_module, "kmeans", lambda x, k, seed, n_init, device: seen.append(device) or Labels(len(x)))

    class Vectors:
        def layer(self, layer: int) -> np.ndarray:
            return np.arange(12, dtype=np.float32).reshape(6, 2)

    tokens, matrix = ["a", "b"], np.eye(2, dtype=np.float32)
    for device in ("cpu", "cuda", "cpu"):
        inputs = fake_inputs(tokens, matrix, tmp_path)
        inputs.device = device  # faked: no GPU is touched, K-means is replaced
        inputs.concepts([(Vectors(), np.arange(6))], layer=1, k=2, seed=0, n_init=1, identity={"corpus": "c"})
    assert seen == ["cpu", "cuda"]  # the third call, on the CPU again, reads the CPU entry
    assert len(list((tmp_path / "concepts").glob("*/meta.json"))) == 2


def test_the_board_never_mixes_a_cpu_run_with_a_gpu_run(tmp_path: Path) -> None:
    sink = JsonSink(SinkSettings(results_dir=tmp_path / "results"))
    model = ModelRevision("tiny", "tiny/m", "c" * 40)
    for device, value, started in (("cpu", 10.0, 1.0), ("cuda", 30.0, 2.0), ("cpu", 12.0, 3.0)):
        other = ModelRevision("other", "tiny/o", "d" * 40) if started == 3.0 else model
        result = TaskResult("calign", {"k": 3}, {"calign_max": value})
        outcome = Outcome(other, META, result, started, started + 1,
                          identity.fingerprint(META, {"k": 3}, {}, "float32", device, "15.0.0"),
                          task_key=identity.task_key(other.name, other.revision, None, META, {"k": 3}, "float32", device))
        sink.write(outcome)
    view = build_view(board_of(JsonStore(tmp_path / "results")))
    cells = {(line.model, line.tasks["calign"].value) for line in view.lines if "calign" in line.tasks}
    assert cells == {("tiny", 10.0), ("other", 12.0)}  # the default configuration: the CPU one, run by two models
    assert [(r.model, r.value) for r in view.others] == [("tiny", 30.0)]  # the GPU run: apart, never in a cell
