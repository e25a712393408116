"""Training groups (text) -> padded token ids, generation labels and the ``<emb>`` layout, via the template."""
from __future__ import annotations

from typing import Sequence

import torch

from .core.tensors import pad
from .families.base import IGNORE_INDEX
from .families.o1e.template import Template


class O1ECollator:
    """Tokenizes a batch of :class:`~o1e_tevatron.data.TrainDataset` items with any family's template.

    Query sequences carry ``gen_labels`` (thought tokens and ``</s>``; IGNORE_INDEX elsewhere and for
    plain queries); passages are flattened group by group, positive first.
    """

    def __init__(self, template: Template, padding_side: str = "left", pad_to_multiple_of: int | None = None):
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
        self.template = template
        self.padding_side = padding_side
        self.pad_to_multiple_of = pad_to_multiple_of

    def queries(self, queries: Sequence[str], thoughts: Sequence[str | None],
                grounding: Sequence[Sequence[str]] | None = None):
        t = self.template
        query_ids = t.tokenize_queries(queries) if grounding is None else t.tokenize_queries(queries, grounding)
        thought_ids = iter(t.tokenize_batch([th for th in thoughts if th is not None]))
        sequences, labels = [], []
        for q, th in zip(query_ids, thoughts):
            if th is None:
                seq = t.plain_query(q)
                labels.append([IGNORE_INDEX] * len(seq))
            else:
                seq, start, end = t.thought_query(q, next(thought_ids))
                labels.append(t.generation_labels(seq, start, end))
            sequences.append(seq)
        ids, mask = pad(sequences, t.pad_id, self.padding_side, self.pad_to_multiple_of)
        label_ids, _ = pad(labels, IGNORE_INDEX, self.padding_side, self.pad_to_multiple_of)
        return ids, mask, label_ids

    def passages(self, passages: Sequence[str]):
        t = self.template
        return pad([t.passage(p) for p in t.tokenize_batch(passages)], t.pad_id, self.padding_side,
                   self.pad_to_multiple_of)

    def __call__(self, features: list[dict]) -> dict:
        grounded = getattr(self.template.config, "grounding_passages", 0) > 0
        q_ids, q_mask, labels = self.queries([f["query"] for f in features], [f["thought"] for f in features],
                                             [f["grounding"] for f in features] if grounded else None)
        p_ids, p_mask = self.passages([p for f in features for p in f["passages"]])
        batch = {
            "query_input_ids": q_ids, "query_attention_mask": q_mask, "gen_labels": labels,
            "passage_input_ids": p_ids, "passage_attention_mask": p_mask,
        }
        if all(f.get("teacher_scores") is not None for f in features):
            batch["teacher_scores"] = torch.tensor([f["teacher_scores"] for f in features], dtype=torch.float32)
        return batch
