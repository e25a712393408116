"""Tensor helpers both sides share: padding token-id sequences into batches, positions and last-token
indices from attention masks, the device a model sits on. Training (collator, families) and search
(thinking, RepLLaMA) pad and position alike, so a query embeds the same in either."""
from __future__ import annotations

from typing import Sequence

import torch


def pad(sequences: Sequence[Sequence[int]], pad_value: int, side: str, multiple_of: int | None = None):
    """(ids, attention mask) tensors, padded on ``side`` to the longest (rounded up to ``multiple_of``)."""
    length = max(len(s) for s in sequences)
    if multiple_of:
        length = -(-length // multiple_of) * multiple_of
    ids = torch.full((len(sequences), length), pad_value, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(length - len(seq), length) if side == "left" else slice(0, len(seq))
        ids[row, span] = torch.tensor(seq, dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last attended token of each row: right for left and right padding alike."""
    length = attention_mask.shape[1]
    return length - 1 - attention_mask.flip(-1).long().argmax(-1)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so a left-padded row embeds like an unpadded one."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def model_device(model) -> torch.device:
    return next(model.parameters()).device
