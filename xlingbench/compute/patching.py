"""Activation patching on a decoder's residual stream (Dumas et al. 2025; Körner et al. 2026).

Functions of a causal language model and token ids, so that a tiny model built in a test runs
them exactly as Gemma does. The residual stream has ``L + 1`` states per token for ``L`` decoder
layers: state 0 enters layer 0 (the scaled embedding), state ``j`` leaves layer ``j - 1``. This is
the indexing of ``output_hidden_states`` before the final norm; the published code's "layer j" is
our state ``j + 1`` (it never patches the embedding).

Why plain PyTorch forward hooks and not nnsight: the only interventions are "read the state at one
position" and "overwrite it", on the model's own decoder layers (a pre-hook on layer 0 for state
0, a forward hook on layer ``j - 1`` for state ``j``). Hooks need no extra dependency, work on every
``transformers`` decoder and on CPU, GPU, float32 and bfloat16 alike, and keep the batch layout in
our hands: patching a position changes nothing before it, so a target prompt's prefix is run once
and its key/value cache is shared by the ``L + 1`` patched continuations, which run as one batch.
"""
from __future__ import annotations

import copy
import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

#: the hook that sees a state: ("pre", layer) for state 0, ("post", layer) for state layer + 1
StateEdit = Callable[[int, "torch.Tensor"], "torch.Tensor | None"]


def decoder_layers(model: "torch.nn.Module") -> "torch.nn.ModuleList":
    """The model's stack of decoder layers: the first ModuleList as long as ``num_hidden_layers``."""
    import torch

    count = getattr(model.config, "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"{type(model).__name__} has no list of {count} decoder layers")


@contextmanager
def state_hooks(layers: "torch.nn.ModuleList", edit: StateEdit) -> Iterator[None]:
    """Call ``edit(state, hidden)`` on every residual state while the block runs; a tensor it
    returns replaces the hidden states from there on (``None`` leaves them)."""

    def pre(module: object, args: tuple, kwargs: dict) -> tuple | None:
        hidden = args[0] if args else kwargs["hidden_states"]
        new = edit(0, hidden)
        if new is None:
            return None
        return ((new, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": new})

    def post(index: int) -> Callable:
        def hook(module: object, args: tuple, output: object) -> object:
            hidden = output[0] if isinstance(output, tuple) else output
            new = edit(index + 1, hidden)
            if new is None:
                return None
            return (new, *output[1:]) if isinstance(output, tuple) else new
        return hook

    handles = [layers[0].register_forward_pre_hook(pre, with_kwargs=True)]
    handles += [layer.register_forward_hook(post(i)) for i, layer in enumerate(layers)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def read_states(model: "torch.nn.Module", prompts: Sequence[Sequence[int]], positions: Sequence[int],
                batch_size: int = 8) -> np.ndarray:
    """Residual states (prompts, L + 1, hidden), float32, at ``positions[i]`` of ``prompts[i]``.

    Batched with right padding and an attention mask: a causal model's state at a real token
    never sees the padding after it, and positions count from 0 as in an unpadded run.
    """
    import torch

    layers = decoder_layers(model)
    device = next(model.parameters()).device
    out = np.zeros((len(prompts), len(layers) + 1, model.config.hidden_size), dtype=np.float32)
    for start in range(0, len(prompts), batch_size):
        rows = range(start, min(start + batch_size, len(prompts)))
        ids, mask = _right_padded([prompts[i] for i in rows], device)
        where = torch.tensor([positions[i] for i in rows], device=device)

        def keep(state: int, hidden: "torch.Tensor") -> None:
            picked = hidden[torch.arange(len(where), device=device), where]
            out[rows.start:rows.stop, state] = picked.float().cpu().numpy()

        with torch.no_grad(), state_hooks(layers, keep):
            model(input_ids=ids, attention_mask=mask, logits_to_keep=1)
    return out


@dataclass
class Patched:
    """Next-token probabilities and greedy continuations of one target prompt, one row per patch."""

    probs: np.ndarray  # (rows, vocabulary) float32
    generated: list[list[int]]  # per row, the greedy tokens (empty when none were asked for)


def patch_runs(model: "torch.nn.Module", prompt: Sequence[int], position: int, latents: "np.ndarray | None",
               starts: Sequence[int], generate: int = 0) -> Patched:
    """Run ``prompt`` once per row ``r``, overwriting the state ``j`` at ``position`` with
    ``latents[r, j]`` for every ``j >= starts[r]`` (a start above ``L`` patches nothing: the
    unpatched run). ``latents`` is (rows, L + 1, hidden) or None when no row patches.

    The prefix before ``position`` is the same in every row (a patch changes nothing before it),
    so it runs once; its key/value cache is copied for the batch of rows, which run from
    ``position`` to the end. ``generate`` > 0 continues each row greedily by that many tokens.
    """
    import torch

    if not 0 < position < len(prompt):
        raise ValueError(f"the patched position {position} must fall after the first token of a {len(prompt)}-token prompt")
    layers = decoder_layers(model)
    device = next(model.parameters()).device
    rows = len(starts)
    with torch.no_grad():
        prefix = model(input_ids=torch.tensor([list(prompt[:position])], device=device), use_cache=True, logits_to_keep=1)
        cache = copy.deepcopy(_cache_of(prefix))
        cache.batch_repeat_interleave(rows)
        suffix = torch.tensor([list(prompt[position:])] * rows, device=device)
        edit = _overwrite(latents, starts, len(layers), device) if latents is not None else (lambda s, h: None)
        with state_hooks(layers, edit):
            out = model(input_ids=suffix, **{_cache_argument(model): cache}, use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1].float()
        generated = _greedy(model, logits, _cache_of(out), generate) if generate else [[] for _ in range(rows)]
        return Patched(probs=torch.softmax(logits, dim=-1).cpu().numpy(), generated=generated)


def _overwrite(latents: np.ndarray, starts: Sequence[int], num_layers: int, device: "torch.device") -> StateEdit:
    """The edit that writes ``latents[r, j]`` at the first suffix position of row ``r`` for ``j >= starts[r]``."""
    import torch

    values = torch.as_tensor(np.asarray(latents), device=device)
    begins = torch.as_tensor(list(starts), device=device)

    def edit(state: int, hidden: "torch.Tensor") -> "torch.Tensor | None":
        rows = torch.nonzero(begins <= state).flatten()
        if state > num_layers or len(rows) == 0:
            return None
        hidden = hidden.clone()
        hidden[rows, 0] = values[rows, state].to(hidden.dtype)
        return hidden

    return edit


def _greedy(model: "torch.nn.Module", logits: "torch.Tensor", cache: object, steps: int) -> list[list[int]]:
    """``steps`` greedy tokens per row, continuing from ``logits`` with the (patched) cache."""
    import torch

    chosen = [logits.argmax(-1)]
    for _ in range(steps - 1):
        out = model(input_ids=chosen[-1][:, None], **{_cache_argument(model): cache}, use_cache=True, logits_to_keep=1)
        cache = _cache_of(out)
        chosen.append(out.logits[:, -1].argmax(-1))
    return torch.stack(chosen, dim=1).cpu().tolist()


def _cache_argument(model: "torch.nn.Module") -> str:
    """The forward argument that takes a key/value cache: ``cache`` in recent transformers
    (which deprecates ``past_key_values``), ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(output: object) -> object:
    """The key/value cache a forward pass returned, under either name."""
    found = getattr(output, "cache", None)
    return found if found is not None else output.past_key_values


def _right_padded(prompts: Sequence[Sequence[int]], device: "torch.device") -> tuple["torch.Tensor", "torch.Tensor"]:
    """Token ids padded on the right with 0 and the attention mask that hides the padding."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(list(p), device=device)
        mask[i, : len(p)] = 1
    return ids, mask


def answer_ids(word: str, by_surface: Mapping[str, Sequence[int]], first_ids: Sequence[int] = ()) -> list[int]:
    """Every token that can begin ``word`` as the model writes it: tokens spelling a non-empty
    prefix of it (``by_surface`` maps a token's text without its word-start marker to its ids,
    so a leading space counts too), plus ``first_ids`` (the first token of the tokenizer's own
    encodings, which covers byte-level pieces no surface spells)."""
    found = {i for n in range(1, len(word) + 1) for i in by_surface.get(word[:n], ())}
    return sorted(found | set(first_ids))


def mass(probs: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """Probability mass on ``ids`` in each row of ``probs`` (rows, vocabulary)."""
    return probs[:, list(ids)].sum(axis=1) if len(ids) else np.zeros(len(probs))


def bootstrap_interval(values: np.ndarray, seed: int, resamples: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with ``seed``)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        raise ValueError("a bootstrap interval needs at least one value")
    draws = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    means = values[draws].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))
