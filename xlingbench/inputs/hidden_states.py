"""The model calls behind the word vectors: which hidden states are taken, for each kind of model.

Encoder models, and encoder-decoder models by default, give bidirectional encoder states.
``side="decoder"`` on an encoder-decoder model teacher-forces the decoder on the sentence shifted
right behind the decoder start token, with an empty encoder input, so the state at position i has
seen the tokens before i only. Decoder-only models give their causal states (position i has seen
tokens up to i). Each kind is a :data:`Forward`: (input_ids, attention_mask) -> hidden states of
layers 0..L (0 = embedding output).
"""
from __future__ import annotations

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


def forward_fn(model: Any, tokenizer: Any, side: str, encoder_decoder: bool, device: str) -> Forward:
    """A function (input_ids, attention_mask) -> hidden states of layers 0..L for ``side``."""
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
