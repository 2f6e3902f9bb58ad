"""The model calls behind the word vectors: which hidden states are taken, for each kind of model.

Encoder models, and encoder-decoder models by default, give bidirectional encoder states.
``side="decoder"`` on an encoder-decoder model teacher-forces the decoder on the sentence shifted
right behind the decoder start token, with an empty encoder input, so the state at position i has
seen the tokens before i only. Decoder-only models give their causal states (position i has seen
tokens up to i). Each kind is a :data:`Forward`: (input_ids, attention_mask) -> hidden states of
layers 0..L (0 = embedding output).

The last layer: transformers gives the last hidden state after the model's final norm (Llama,
Gemma, Qwen, Mistral ``model.norm``; GPT-2 ``ln_f``; T5 ``final_layer_norm``) and every other
state before any norm, so the last layer is on another scale than the rest. ``last_layer="prenorm"``
takes the input of that final norm instead (the last block's output, the residual stream), read
with a forward pre-hook on the module :func:`final_norm` finds; a model without one (BERT-type
encoders, whose blocks each end in their own LayerNorm) is refused in one line.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Sequence

from xlingbench.core.errors import UserError

if TYPE_CHECKING:
    import torch

SIDES = ("encoder", "decoder")
CONTEXT = {
    "encoder": "bidirectional: each state has seen the whole sentence (or its window)",
    "decoder": "teacher-forced decoder with an empty encoder input: the state at position i has seen tokens before i only",
    "causal": "causal decoder-only model: the state at position i has seen tokens up to and including i",
}

Forward = Callable[["torch.Tensor", "torch.Tensor"], Sequence["torch.Tensor"]]
#: which last layer is taken: after the final norm (as transformers returns it), or its input
LAST_LAYERS = ("normed", "prenorm")
#: names of a model's final norm, by architecture (Llama/Gemma/Qwen/Mistral, GPT-2/BLOOM, T5/OPT, Phi, Mamba)
_FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f")
#: where that norm sits below the module called: itself, or its base model
_HOLDERS = ("", "model", "transformer", "decoder", "gpt_neox", "backbone")


def effective_side(arch: str, side: str) -> str:
    """Which states are taken: "encoder", "decoder" (teacher-forced) or "causal" (decoder-only)."""
    if side not in SIDES:
        raise UserError(f"Unknown side {side!r}.", f"Use one of {SIDES}.")
    if arch == "decoder":
        return "causal"
    if arch == "encoder" and side == "decoder":
        raise UserError("An encoder-only model has no decoder side.", "Use side=encoder for this model.")
    return side


# ---------------------------------------------------------------- model calls


def forward_fn(model: Any, tokenizer: Any, side: str, encoder_decoder: bool, device: str, last_layer: str = "normed") -> Forward:
    """A function (input_ids, attention_mask) -> hidden states of layers 0..L for ``side``, the
    last one after the final norm or, with ``last_layer="prenorm"``, before it."""
    forward = _states_fn(model, tokenizer, side, encoder_decoder, device)
    if last_layer == "normed":
        return forward
    if side == "decoder":
        return _before_final_norm(forward, final_norm(model.get_decoder(), model))
    return _before_final_norm(forward, final_norm(model.get_encoder() if encoder_decoder else model, model))


def check_last_layer(last_layer: str) -> None:
    """``last_layer`` is one of :data:`LAST_LAYERS` (checked before anything loads)."""
    if last_layer not in LAST_LAYERS:
        raise UserError(f"Unknown last_layer {last_layer!r}.", f"Use one of {LAST_LAYERS}.")


def final_norm(module: Any, model: Any) -> Any:
    """The norm ``module`` applies after its last block (see :data:`_FINAL_NORMS`), or a UserError."""
    import torch

    for holder in _HOLDERS:
        base = getattr(module, holder, None) if holder else module
        for name in _FINAL_NORMS:
            found = getattr(base, name, None) if isinstance(base, torch.nn.Module) else None
            if isinstance(found, torch.nn.Module):
                return found
    raise UserError(
        f"{type(model).__name__} has no final norm after its last layer, so it has no pre-norm last layer "
        "(its last hidden state is its last block's output already).",
        "Leave last_layer=normed for this model.",
    )


def _before_final_norm(forward: Forward, norm: Any) -> Forward:
    """``forward`` with its last state replaced by the input of ``norm``, read by a pre-hook; the
    first call checks that ``norm`` of that input is the last state (the right module was found)."""
    checked: list[bool] = []

    def prenorm(ids: "torch.Tensor", mask: "torch.Tensor") -> Sequence["torch.Tensor"]:
        import torch

        seen: list["torch.Tensor"] = []
        caller = threading.get_ident()  # batches may run side by side: each call keeps its own thread's input
        handle = norm.register_forward_pre_hook(lambda module, args: seen.append(args[0]) if threading.get_ident() == caller else None)
        try:
            states = forward(ids, mask)
        finally:
            handle.remove()
        if len(seen) != 1 or seen[0].shape != states[-1].shape or not (
                checked or torch.allclose(norm(seen[0]).float(), states[-1].float(), rtol=1e-3, atol=1e-3)):
            raise UserError(f"{type(norm).__name__} is not the norm that gives this model's last hidden state, "
                            "so its pre-norm last layer cannot be read.", "Leave last_layer=normed for this model.")
        checked.append(True)
        return (*states[:-1], seen[0])

    return prenorm


def _states_fn(model: Any, tokenizer: Any, side: str, encoder_decoder: bool, device: str) -> Forward:
    """The plain forward (every state as transformers returns it) for ``side``."""
    if side == "decoder":
        return _teacher_forced(model, tokenizer, device)
    module = model.get_encoder() if encoder_decoder else model

    def forward(ids: "torch.Tensor", mask: "torch.Tensor") -> Sequence["torch.Tensor"]:
        return _hidden_states(module(input_ids=ids, attention_mask=mask, output_hidden_states=True), "hidden_states", model)

    return forward


def _teacher_forced(model: Any, tokenizer: Any, device: str) -> Forward:
    """Decoder states with the sentence as decoder input (shifted right) and an empty source."""
    import torch

    start = _decoder_start(model)
    source = torch.tensor([tokenizer("")["input_ids"] or [start]], device=device)

    def forward(ids: "torch.Tensor", mask: "torch.Tensor") -> Sequence["torch.Tensor"]:
        shifted = torch.cat([torch.full_like(ids[:, :1], start), ids[:, :-1]], dim=1)
        out = model(
            input_ids=source.expand(len(ids), -1), attention_mask=torch.ones_like(source).expand(len(ids), -1),
            decoder_input_ids=shifted, decoder_attention_mask=mask, output_hidden_states=True,
        )
        return _hidden_states(out, "decoder_hidden_states", model)

    return forward


def _decoder_start(model: Any) -> int:
    """The decoder start token: from the config, else the generation config (transformers v5)."""
    for holder in (model.config, getattr(model, "generation_config", None)):
        start = getattr(holder, "decoder_start_token_id", None)
        if start is not None:
            return int(start)
    raise UserError(
        f"{type(model).__name__} declares no decoder_start_token_id, so its decoder cannot be teacher-forced.",
        "Set decoder_start_token_id in the model's config, or use side=encoder.",
    )


def _hidden_states(out: Any, attribute: str, model: Any) -> Sequence["torch.Tensor"]:
    states = getattr(out, attribute, None)
    if states is None:
        raise UserError(
            f"{type(model).__name__} returned no {attribute} with output_hidden_states=True.",
            "Load the model with a transformers class that returns hidden states (AutoModel).",
        )
    return states


def probe(forward: Forward, ids: list[int], device: str) -> tuple[int, int]:
    """Number of layers (L+1) and hidden size, from one sentence; fails early on unfit models."""
    import torch

    tensor = torch.tensor([ids], device=device)
    try:
        states = forward(tensor, torch.ones_like(tensor))
    except TypeError as exc:  # the forward does not accept output_hidden_states / attention_mask
        raise UserError(f"The model cannot give hidden states ({exc}).", "Use a transformers model (AutoModel) that supports output_hidden_states.") from exc
    return len(states), int(states[0].shape[-1])
