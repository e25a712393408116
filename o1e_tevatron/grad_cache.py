"""Gradient cache for O1E's joint loss: large contrastive batches on the memory of one chunk.

Tevatron's ``--grad_cache`` / ``--gc_q_chunk_size`` / ``--gc_p_chunk_size``, extended to the
generation loss. One training step:

1. Pass 1, without autograd: every query and passage chunk is encoded to its vector; the RNG state
   before each chunk is saved (dropout, LoRA dropout).
2. The contrastive loss (and distillation) on the detached vectors of the whole batch (all ranks' with
   ``negatives_x_device``) gives one gradient per vector.
3. Pass 2, chunk by chunk with autograd, RNG restored: backward of ``<vector, cached gradient>``, plus
   for query chunks ``lambda`` times the chunk's generation loss, whose token sum is divided by the
   batch's labelled-token count (the generation loss is a mean over all labelled tokens of the batch,
   so the chunks' parts add up to the unchunked loss).

The gradients equal those of the unchunked :meth:`O1EModel.forward` loss; only one chunk's
activations are alive at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils.checkpoint import get_device_states, set_device_states

from .loss import global_sum, world_size
from .modeling import O1EModel, O1EOutput
from .template import IGNORE_INDEX


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


def labelled_token_count(labels: Optional[torch.Tensor]) -> int:
    return 0 if labels is None else int((labels[:, 1:] != IGNORE_INDEX).sum())


def grad_cache_step(model: O1EModel, inputs: dict, q_chunk_size: int, p_chunk_size: int,
                    loss_scale: float = 1.0, backward=None) -> O1EOutput:
    """Forward and backward of one batch in chunks; returns the (detached) losses of the batch.

    ``loss_scale`` multiplies every gradient (``1 / gradient_accumulation_steps`` in the trainer);
    ``backward(tensor)`` runs a backward pass (default ``tensor.backward()``; the trainer passes the
    accelerator's, which applies fp16 loss scaling). The returned ``loss`` is not scaled.
    """
    backward = backward or torch.Tensor.backward
    labels = inputs.get("gen_labels")
    queries = split_into_chunks(inputs["query_input_ids"], inputs["query_attention_mask"], labels, q_chunk_size)
    passages = split_into_chunks(inputs["passage_input_ids"], inputs["passage_attention_mask"], None, p_chunk_size)
    weight = model.gen_loss_weight

    # pass 1: vectors only, remembering each chunk's RNG state
    states, q_reps, p_reps = [], [], []
    with torch.no_grad():
        for chunks, reps in ((queries, q_reps), (passages, p_reps)):
            for chunk in chunks:
                states.append(RandomState(chunk.input_ids))
                reps.append(model.encode(chunk.input_ids, chunk.attention_mask))
    after_pass_1 = RandomState(inputs["query_input_ids"])
    q_reps = torch.cat(q_reps).detach().requires_grad_()
    p_reps = torch.cat(p_reps).detach().requires_grad_()

    # the contrastive part of the loss on the cached vectors: one gradient per vector
    retrieval, ctr, kd = model.retrieval_loss(q_reps, p_reps, inputs.get("teacher_scores"))
    ctr_part = (1 - weight) * retrieval
    q_grads, p_grads = torch.autograd.grad(ctr_part * loss_scale, [q_reps, p_reps])

    # the generation loss is a mean over the labelled tokens of the batch (of all ranks with x-device)
    count = labelled_token_count(labels)
    if model.generation.global_token_mean:
        total = global_sum(torch.tensor(float(count), device=q_reps.device)).item()
        token_weight = world_size() / max(total, 1.0)
    else:
        token_weight = 1.0 / max(count, 1)
    gen_weight = weight * token_weight if labels is not None and weight > 0 else 0.0

    # pass 2: each chunk again with autograd, its dropout replayed, its cached gradients pushed through
    gen = q_reps.new_zeros((), dtype=torch.float32)
    state = iter(states)
    for chunk, grads in zip(queries, q_grads.split(q_chunk_size)):
        next(state).restore()
        hidden = model.hidden_states(chunk.input_ids, chunk.attention_mask)
        reps = model.pool(hidden, chunk.input_ids, chunk.attention_mask)
        surrogate = (reps * grads).sum()
        if gen_weight:
            token_sum, _ = model.generation.token_sum(hidden, chunk.labels, model.lm_head)
            gen = gen + token_sum.detach().float() * token_weight
            surrogate = surrogate + gen_weight * loss_scale * token_sum
        backward(surrogate)
    for chunk, grads in zip(passages, p_grads.split(p_chunk_size)):
        next(state).restore()
        reps = model.encode(chunk.input_ids, chunk.attention_mask)
        backward((reps * grads).sum())
    after_pass_1.restore()  # the next step's dropout continues from where an unchunked step would

    loss = weight * gen + ctr_part.detach()
    return O1EOutput(loss=loss, ctr_loss=ctr.detach(), gen_loss=gen, kd_loss=None if kd is None else kd.detach(),
                     q_reps=q_reps.detach(), p_reps=p_reps.detach())
