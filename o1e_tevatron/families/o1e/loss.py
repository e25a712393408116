"""O1E's thought-generation loss (eq. 7): next-token cross entropy on the thought positions of the query
hidden states the contrastive loss already computed, through the LM head chunk by chunk.

Cross-device: each rank's token sum is divided by the global token count times ``1 / world_size``, so
that its mean over ranks is the global-batch loss (see :mod:`o1e_tevatron.loss`).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from peft.tuners.trainable_tokens import TrainableTokensLayer
from torch.utils.checkpoint import checkpoint

from ...loss import global_sum, world_size
from ..base import IGNORE_INDEX


class ThoughtGenerationLoss:
    """Behaviour-cloning loss of eq. 7 from hidden states the contrastive loss already computed.

    Only the positions that predict a labelled token (thought tokens and the closing ``</s>``) go
    through the LM head, in chunks whose logits are recomputed in the backward pass instead of being
    stored: memory for logits is one chunk's, whatever the number of thought tokens. A chunk holds at
    most ``chunk_size`` positions and at most ``max_chunk_logits`` logits (positions x vocabulary), so
    a 152k vocabulary gets chunks of ~110 positions, not 1024 (1024 x 152k float32 logits are 0.6 GB,
    several times a small model's activations). A linear head goes through a fused linear +
    cross-entropy that keeps one float32 logits buffer per chunk and, for a frozen head, computes the
    chunk's gradient in the forward pass instead of recomputing the logits: a plain ``nn.Linear``, or
    PEFT's trainable-token rows over one (how a tied head, SmolLM2's, Qwen2.5's, Gemma's, carries the
    new special tokens' rows), whose few rows get their gradient without a merged head ever being built.
    Equals the Hugging Face ``model(labels=...)`` loss (mean over labelled tokens of the batch).
    """

    def __init__(self, chunk_size: int = 1024, global_token_mean: bool = False, max_chunk_logits: int = 2**24):
        self.chunk_size = chunk_size
        self.global_token_mean = global_token_mean
        self.max_chunk_logits = max_chunk_logits

    def __call__(self, hidden: torch.Tensor, labels: torch.Tensor, lm_head: torch.nn.Module) -> torch.Tensor:
        token_sum, count = self.token_sum(hidden, labels, lm_head)
        if self.global_token_mean:
            total = global_sum(torch.tensor(float(count), device=hidden.device))
            return token_sum * world_size() / total.clamp(min=1)
        return token_sum / max(count, 1)

    def token_weight(self, labels: torch.Tensor, device) -> float:
        """What each labelled token's loss counts in the batch mean: 1 / the batch's labelled tokens, or
        world size / all ranks' labelled tokens (so that DDP's average over ranks is the global mean)."""
        count = int((labels[:, 1:] != IGNORE_INDEX).sum())
        if self.global_token_mean:
            total = global_sum(torch.tensor(float(count), device=device)).item()
            return world_size() / max(total, 1.0)
        return 1.0 / max(count, 1)

    def positions_per_chunk(self, vocab: int) -> int:
        return max(1, min(self.chunk_size, self.max_chunk_logits // vocab))

    def token_sum(self, hidden: torch.Tensor, labels: torch.Tensor, lm_head: torch.nn.Module):
        """(sum of token losses, number of labelled tokens); zero when nothing is labelled."""
        targets = labels[:, 1:]
        mask = targets != IGNORE_INDEX
        count = int(mask.sum())
        if count == 0:
            return hidden.sum() * 0.0, 0  # keeps the graph connected for DDP
        selected = hidden[:, :-1][mask]
        targets = targets[mask]
        total = hidden.new_zeros((), dtype=torch.float32)
        head = linear_head(lm_head)
        step = self.positions_per_chunk(_vocab_size(lm_head) if head is None else head.weight.shape[0])
        for start in range(0, count, step):
            h, y = selected[start:start + step], targets[start:start + step]
            if head is not None:
                total = total + LinearCrossEntropySum.apply(h, *head, y)
            elif torch.is_grad_enabled() and h.requires_grad:
                total = total + checkpoint(_chunk_token_sum, h, y, lm_head, use_reentrant=False)
            else:
                total = total + _chunk_token_sum(h, y, lm_head)
        return total, count


def _chunk_token_sum(h: torch.Tensor, y: torch.Tensor, lm_head: torch.nn.Module) -> torch.Tensor:
    return F.cross_entropy(lm_head(h).float(), y, reduction="sum")


def _vocab_size(lm_head: torch.nn.Module) -> int:
    return getattr(lm_head, "out_features", None) or lm_head.weight.shape[0]


class LinearHead(NamedTuple):
    """A linear LM head: ``weight`` and ``bias``, with the rows at ``row_index`` replaced by ``rows``."""
    weight: torch.Tensor
    bias: torch.Tensor | None
    row_index: torch.Tensor | None
    rows: torch.Tensor | None


def linear_head(lm_head: torch.nn.Module) -> LinearHead | None:
    """The head as a ``LinearHead`` where it is one: a plain ``nn.Linear``, or PEFT's trainable-token
    rows over one with a single active adapter, not merged (PEFT's own forward is then ``F.linear`` of
    the base weight with those rows index-copied in). None otherwise (the loss calls the module)."""
    if type(lm_head) is torch.nn.Linear:
        return LinearHead(lm_head.weight, lm_head.bias, None, None)
    tokens = getattr(lm_head, "token_adapter", None)
    if not (isinstance(tokens, TrainableTokensLayer) and type(tokens.base_layer) is torch.nn.Linear
            and tokens.base_layer.bias is None):  # PEFT's forward drops a bias: leave such a head to it
        return None
    active = tokens.active_adapters
    if tokens.merged or tokens.disable_adapters or getattr(lm_head, "disable_adapters", False) or len(active) != 1:
        return None
    base = tokens.base_layer
    index = torch.tensor(tokens.token_indices[active[0]], device=base.weight.device)
    return LinearHead(base.weight, base.bias, index, tokens.trainable_tokens_delta[active[0]].to(base.weight))


class LinearCrossEntropySum(torch.autograd.Function):
    """sum_i CE(h_i W^T + b, y_i) over one chunk without keeping its logits.

    Frozen head (LoRA, the paper's setting): the gradient with respect to ``h`` is computed in the
    forward pass, from the logits turned in place into ``softmax - onehot``, and only that
    (positions x hidden) gradient is kept: two passes over the head weight per chunk, as an unchunked
    loss makes, and never a recomputation. Trainable head: ``h`` and one log-sum-exp per row are saved
    and the backward pass recomputes the logits (a weight-sized gradient per chunk would cost more).
    Replacement ``rows`` (PEFT's trainable tokens; ``LinearHead``) count as part of a frozen head: their
    small gradient is computed in the forward pass too.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, row_index, rows, y):
        logits = _head_logits(h, weight, bias, row_index, rows)
        target_logits = logits.gather(1, y[:, None]).squeeze(1)
        top = logits.max(dim=-1).values
        probs = logits.sub_(top[:, None]).exp_()  # in place: one float32 buffer per chunk
        sums = probs.sum(-1)
        lse = sums.log() + top
        loss = (lse - target_logits).sum()
        ctx.recompute = ctx.needs_input_grad[1] or (bias is not None and ctx.needs_input_grad[2])
        if ctx.recompute:
            ctx.save_for_backward(h, weight, bias, row_index, rows, y, lse)
        elif ctx.needs_input_grad[0] or ctx.needs_input_grad[4]:  # False under no_grad: nothing computed
            g = _softmax_minus_onehot(probs.div_(sums[:, None]), y).to(h.dtype)
            ctx.save_for_backward(*_head_grads(g, h, weight, row_index, rows, ctx.needs_input_grad))
        return loss

    @staticmethod
    def backward(ctx, grad):
        if not ctx.recompute:
            return tuple(None if g is None else g * grad.to(g.dtype) for g in ctx.saved_tensors)
        h, weight, bias, row_index, rows, y, lse = ctx.saved_tensors
        probs = _head_logits(h, weight, bias, row_index, rows).sub_(lse[:, None]).exp_()
        g = _softmax_minus_onehot(probs, y).mul_(grad).to(h.dtype)
        return _head_grads(g, h, weight, row_index, rows, ctx.needs_input_grad, bias)


def _head_logits(h, weight, bias, row_index, rows) -> torch.Tensor:
    logits = F.linear(h, weight, bias).float()
    if row_index is not None:
        logits[:, row_index] = F.linear(h, rows, None if bias is None else bias[row_index]).float()
    return logits


def _head_grads(g, h, weight, row_index, rows, needs, bias=None) -> tuple:
    """Gradients of ``sum(g * logits)`` for the inputs of ``LinearCrossEntropySum.forward`` that need one,
    without building the head with its rows replaced: the replaced rows' part is a correction."""
    grad_h = g @ weight if needs[0] else None
    grad_w = g.T @ h if needs[1] else None
    grad_b = g.sum(0) if bias is not None and needs[2] else None
    grad_rows = None
    if row_index is not None:
        g_rows = g[:, row_index]
        if grad_h is not None:
            grad_h += g_rows @ (rows - weight[row_index])
        if grad_w is not None:
            grad_w[row_index] = 0  # overwritten rows: the weight's own values there play no part
        grad_rows = g_rows.T @ h if needs[4] else None
    return grad_h, grad_w, grad_b, None, grad_rows, None


def _softmax_minus_onehot(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    probs[torch.arange(y.shape[0], device=y.device), y] -= 1
    return probs
