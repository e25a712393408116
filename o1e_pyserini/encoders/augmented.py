"""Thought-augmented queries for any Pyserini query encoder: the separate-generator baseline.

The paper's Table 4 asks whether thoughts alone help: an off-the-shelf retriever (RepLLaMA) reads
thoughts that another LLM wrote (GPT-4o-mini). :class:`ThoughtAugmentedQueryEncoder` embeds
``q + " " + t_i`` with any base encoder for each thought and averages the L2-normalised vectors, as
eq. 11 does for O1E, so the two arms differ only in joint training.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np
from pyserini.encode import QueryEncoder

from .o1e import EncodedQueries, check_queries
from ..thinking.backends import ThoughtTexts

logger = logging.getLogger(__name__)


def encode_texts(encoder: QueryEncoder, texts: list[str]) -> np.ndarray:
    """(n, d) float32 from a Pyserini query encoder, batched when it can batch."""
    if hasattr(encoder, "encode_batch"):
        return np.asarray(encoder.encode_batch(texts), dtype=np.float32)
    return np.stack([np.asarray(encoder.encode(text), dtype=np.float32).reshape(-1) for text in texts])


class ThoughtAugmentedQueryEncoder(QueryEncoder):
    """Mean of the normalised ``base`` vectors of ``q + separator + t_i`` over the query's thoughts."""

    def __init__(self, base: QueryEncoder, thoughts: ThoughtTexts, batch_size: int = 16, separator: str = " "):
        super().__init__()
        self.base, self.thoughts = base, thoughts
        self.batch_size, self.separator = batch_size, separator
        self.has_model = True
        self.encoded = EncodedQueries()

    def encode(self, query: str, **kwargs) -> np.ndarray:
        return self.encode_batch([query])[0]

    def encode_batch(self, queries: Sequence[str], ids: Optional[Sequence[str]] = None, **kwargs) -> np.ndarray:
        queries = list(queries)
        check_queries(queries, ids)
        return np.concatenate([self._encode_chunk(queries[i:i + self.batch_size])
                               for i in range(0, len(queries), self.batch_size)] or [np.empty((0, 0), np.float32)])

    def _encode_chunk(self, queries: list[str]) -> np.ndarray:
        thoughts = self.thoughts.texts(queries)
        empty = [q for q, ts in zip(queries, thoughts) if not ts]
        if empty:
            raise ValueError(f"no thoughts for {len(empty)} queries, e.g. {empty[0]!r:.80}")
        flat = encode_texts(self.base, [f"{q}{self.separator}{t}" for q, ts in zip(queries, thoughts) for t in ts])
        flat /= np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
        bounds = np.cumsum([0] + [len(ts) for ts in thoughts])
        vectors = np.stack([flat[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)
        self.encoded.add(queries, vectors, thoughts)
        return vectors
