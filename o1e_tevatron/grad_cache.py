"""Gradient cache for any family's loss: large contrastive batches on the memory of one chunk.

Tevatron's ``--grad_cache`` / ``--gc_q_chunk_size`` / ``--gc_p_chunk_size``, extended to loss parts
read from query tokens (O1E's generation loss). One training step:

1. Pass 1, without autograd: every query and passage chunk is encoded to its vector; the RNG state
   before each chunk is saved (dropout, LoRA dropout).
2. The family's vector loss parts (contrastive, distillation; DEBATER's max-step and self-distillation
   parts) on the detached vectors of the whole batch (all ranks' with ``negatives_x_device``), summed
   by the family's objective, give one gradient per vector (a passage vector may be (M, d)).
3. Pass 2, chunk by chunk with autograd, RNG restored: backward of ``<vector, cached gradient>``, plus
   for query chunks each token part's objective weight times the chunk's token sum divided by the
   batch's labelled-token count (the generation loss is a mean over all labelled tokens of the batch,
   so the chunks' parts add up to the unchunked loss).

The gradients equal those of the unchunked :meth:`FamilyModel.forward` loss; only one chunk's
activations are alive at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils.checkpoint import get_device_states, set_device_states

from .families.base import FamilyModel, FamilyOutput


class RandomState:
    """The CPU and accelerator RNG states at one moment, to replay a chunk's dropout masks."""

    def __init__(self, *tensors: torch.Tensor):
        self.cpu = torch.get_rng_state()
        self.devices, self.device_states = get_device_states(*tensors)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        set_device_states(self.devices, self.device_states)


@dataclass
class Chunk:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: Optional[torch.Tensor] = None


def split_into_chunks(input_ids, attention_mask, labels, chunk_size: int) -> list[Chunk]:
    """Row chunks of ``chunk_size`` (the last may be smaller), each cut to its own padded width.

    Padding is contiguous on one side (left or right), so keeping the columns where some row
    attends drops only padding; positions count real tokens, so the vectors do not change.
    """
    if chunk_size < 1:
        raise ValueError(f"grad cache chunk sizes must be >= 1, got {chunk_size}")
    chunks = []
    for start in range(0, input_ids.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        mask = attention_mask[rows]
        columns = mask.bool().any(0)
        chunks.append(Chunk(input_ids[rows][:, columns], mask[:, columns],
                            None if labels is None else labels[rows][:, columns]))
    return chunks


def grad_cache_step(model: FamilyModel, inputs: dict, q_chunk_size: int, p_chunk_size: int,
                    loss_scale: float = 1.0, backward=None) -> FamilyOutput:
    """Forward and backward of one batch in chunks; returns the (detached) losses of the batch.

    ``loss_scale`` multiplies every gradient (``1 / gradient_accumulation_steps`` in the trainer);
    ``backward(tensor)`` runs a backward pass (default ``tensor.backward()``; the trainer passes the
    accelerator's, which applies fp16 loss scaling). The returned ``loss`` is not scaled.
    """
    backward = backward or torch.Tensor.backward
    labels = inputs.get("gen_labels")
    queries = split_into_chunks(inputs["query_input_ids"], inputs["query_attention_mask"], labels, q_chunk_size)
    passages = split_into_chunks(inputs["passage_input_ids"], inputs["passage_attention_mask"], None, p_chunk_size)
    objective = model.objective

    # pass 1: vectors only, remembering each chunk's RNG state
    states, q_reps, p_reps = [], [], []
    with torch.no_grad():
        for chunks, reps, encode in ((queries, q_reps, model.encode_query), (passages, p_reps, model.encode_passage)):
            for chunk in chunks:
                states.append(RandomState(chunk.input_ids))
                reps.append(encode(chunk.input_ids, chunk.attention_mask))
    after_pass_1 = RandomState(inputs["query_input_ids"])
    q_reps = torch.cat(q_reps).detach().requires_grad_()
    p_reps = torch.cat(p_reps).detach().requires_grad_()

    # the parts of the loss on the cached vectors: one gradient per vector
    parts = model.vector_loss_parts(q_reps, p_reps, inputs.get("teacher_scores"))
    q_grads, p_grads = torch.autograd.grad(objective(parts) * loss_scale, [q_reps, p_reps], allow_unused=True)
    q_grads = torch.zeros_like(q_reps) if q_grads is None else q_grads
    p_grads = torch.zeros_like(p_reps) if p_grads is None else p_grads

    # token parts (O1E's generation loss) are means over the labelled tokens of the batch (all ranks'
    # with x-device): each chunk's token sum enters with the batch's per-token weight
    token_losses = {name: loss for name, loss in model.token_losses.items()
                    if labels is not None and objective.weights.get(name)}
    token_weights = {name: loss.token_weight(labels, q_reps.device) for name, loss in token_losses.items()}
    for name in model.token_losses:
        parts[name] = q_reps.new_zeros((), dtype=torch.float32)

    # pass 2: each chunk again with autograd, its dropout replayed, its cached gradients pushed through
    state = iter(states)
    for chunk, grads in zip(queries, q_grads.split(q_chunk_size)):
        next(state).restore()
        hidden = model.hidden_states(chunk.input_ids, chunk.attention_mask)
        surrogate = (model.pool_query(hidden, chunk.input_ids, chunk.attention_mask) * grads).sum()
        for name, loss in token_losses.items():
            token_sum, _ = loss.token_sum(hidden, chunk.labels, model.lm_head)
            parts[name] = parts[name] + token_sum.detach().float() * token_weights[name]
            surrogate = surrogate + objective.scale(name) * token_weights[name] * loss_scale * token_sum
        backward(surrogate)
    for chunk, grads in zip(passages, p_grads.split(p_chunk_size)):
        next(state).restore()
        backward((model.encode_passage(chunk.input_ids, chunk.attention_mask) * grads).sum())
    after_pass_1.restore()  # the next step's dropout continues from where an unchunked step would

    parts = {name: part.detach() for name, part in parts.items()}
    return model.output_class(loss=objective(parts), q_reps=q_reps.detach(), p_reps=p_reps.detach(), **parts)
