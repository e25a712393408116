"""Batched inference with any family's model: token-id sequences -> float32 vectors.

Shared by the corpus encoding driver and the Pyserini encoders, so that passages and plain queries
are embedded the same way everywhere, and the faiss index directories they write are checked the
same way everywhere. Sequences are sorted by length before batching (little padding,
so little wasted compute) and the vectors are returned in the caller's order.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from .tensors import model_device, pad

def encode_sequences(model, sequences: Sequence[Sequence[int]], batch_size: int, progress: bool = False,
                     desc: str = "encoding", query: bool = False) -> np.ndarray:
    """Vectors of ids already laid out by the family's template, left-padded: (n, d) for queries
    (``query=True``) and one-vector passages, (n, M, d) for DEBATER's passages."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    encode = model.encode_query if query else model.encode_passage
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]), reverse=True)
    device = model_device(model)
    vectors = None
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, unit="batch"):
            rows = order[start:start + batch_size]
            ids, mask = pad([sequences[i] for i in rows], model.template.pad_id, "left")
            reps = encode(ids.to(device), mask.to(device)).float().cpu().numpy()
            if vectors is None:
                vectors = np.empty((len(sequences), *reps.shape[1:]), dtype=np.float32)
            vectors[rows] = reps
    if vectors is None:
        return np.empty((0, model.causal_lm.config.hidden_size), dtype=np.float32)
    return vectors


# --- Pyserini's faiss index directory: `index` (faiss.write_index) + `docid` (one id per line, same order) ---
def shard_slice(total: int, num_shards: int, index: int) -> slice:
    """The ``index``-th of ``num_shards`` contiguous parts of ``total`` items (corpus encoding, thinking in parts)."""
    if not 0 <= index < num_shards:
        raise ValueError(f"encode_shard_index must be in [0, {num_shards}), got {index}")
    bounds = np.linspace(0, total, num_shards + 1).round().astype(int)
    return slice(int(bounds[index]), int(bounds[index + 1]))


class DocidCheck:
    """Ids that survive a docid file: Pyserini reads it line by line and strips each line, so an id with
    a line break or surrounding whitespace would shift or change the mapping from vectors to
    documents, and a repeated id would be returned twice."""

    def __init__(self, where: str):
        self.where, self.seen = where, set()

    def problem(self, docid: str) -> str | None:
        if not docid.strip() or docid != docid.strip() or any(c in docid for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
            return f"the id {docid!r} is blank, spans lines or starts or ends with whitespace"
        if docid in self.seen:
            return f"the id {docid!r} repeats: ids must be unique"
        self.seen.add(docid)
        return None

    def __call__(self, docid: str) -> None:
        problem = self.problem(docid)
        if problem:
            raise ValueError(f"{self.where}: document {len(self.seen) + 1}: {problem}")


def read_docid_file(path: Path) -> list[str]:
    """One id per "\\n"-terminated line, as written here (not str.splitlines, which splits at U+2028 too)."""
    ids = Path(path).read_text(encoding="utf-8").split("\n")
    return ids[:-1] if ids and ids[-1] == "" else ids


def write_index_dir(index_dir: str | Path, vectors: np.ndarray, ids: Sequence[str], rows_per_id: int = 1,
                    dtype: str = "float32") -> None:
    """A flat inner-product index (``dtype``: float32 or float16, see ``core.vectors.flat_index``); both
    files are written under temporary names, then renamed. ``rows_per_id``: consecutive rows per
    document (a max-steps DEBATER index: M, its id repeated)."""
    import faiss

    from .vectors import flat_index

    if len(vectors) != len(ids):
        raise ValueError(f"{len(vectors)} vectors but {len(ids)} ids")
    documents = list(ids[::rows_per_id])
    if list(ids) != [docid for docid in documents for _ in range(rows_per_id)]:
        raise ValueError(f"{index_dir}: ids must come in runs of {rows_per_id} rows per document")
    check = DocidCheck(str(index_dir))
    for docid in documents:
        check(docid)
    out = Path(index_dir)
    out.mkdir(parents=True, exist_ok=True)
    index = flat_index(vectors.shape[1], dtype)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(index, str(out / "index.tmp"))
    (out / "docid.tmp").write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    os.replace(out / "index.tmp", out / "index")
    os.replace(out / "docid.tmp", out / "docid")


def read_index_dir_header(index_dir: str | Path) -> tuple[int, int, list[str]]:
    """(vector count, dimension, docids) of an index directory, memory-mapping the index."""
    import faiss

    folder = Path(index_dir)
    missing = [name for name in ("index", "docid") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a faiss index directory: no {' or '.join(missing)}")
    index = faiss.read_index(str(folder / "index"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    docids = read_docid_file(folder / "docid")
    return index.ntotal, index.d, docids


def check_index_dir(index_dir: str | Path, dimension: int | None = None) -> tuple[int, int]:
    """(count, dimension) of a consistent index directory; a clear ValueError otherwise."""
    count, dim, docids = read_index_dir_header(index_dir)
    if count != len(docids):
        raise ValueError(f"{index_dir}: the index holds {count} vectors but docid lists {len(docids)} ids; "
                         "the directory is incomplete or was assembled from different runs: encode it again")
    if dimension is not None and dim != dimension:
        raise ValueError(f"{index_dir}: the index holds {dim}-d vectors but the encoder makes {dimension}-d "
                         "vectors: search with the model the corpus was encoded with")
    return count, dim
