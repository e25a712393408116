"""Exact search over a corpus stored as shards, without merging them into one index.

A sharded index is a directory of shard index directories (each a plain Pyserini faiss directory,
``index`` + ``docid``, float32 or float16): either listed in ``o1e-shards.json`` (what the eval
harness's ``import-shards`` writes) or the sub-directories that ``o1e_tevatron.driver.encode
--encode_num_shard n --faiss_index_dir DIR/i`` wrote, whose records say "shard i of n" (all n must be
there). Each query batch is searched shard by shard and the per-shard top-k lists are merged
exactly: ranked by score, ties by docid, so the run equals one flat search of all vectors with the
same tie rule (``tests/search/test_sharded.py``). Shards are memory-mapped and released after each
pass, so the CPU path holds one shard at a time.

With GPUs (faiss-gpu, the ``gpu`` extra) every shard is copied once onto all GPUs with faiss's own
sharding (``index_cpu_to_all_gpus``, ``shard=True``, float16 on the device) and stays there.
"""
from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from o1e_tevatron.core.vectors import read_record
from o1e_tevatron.core.encoding import DocidCheck, read_docid_file

logger = logging.getLogger(__name__)

SHARDS_FILE = "o1e-shards.json"


def is_sharded(index_dir: str | Path) -> bool:
    """A directory of shard directories rather than one faiss directory."""
    folder = Path(index_dir)
    return folder.is_dir() and not (folder / "index").exists() and (
        (folder / SHARDS_FILE).exists() or any((child / "index").is_file() for child in folder.iterdir()))


def write_shards_file(index_dir: Path, shard_dirs: Sequence[Path]) -> None:
    (index_dir / SHARDS_FILE).write_text(json.dumps({"shards": [str(Path(d).relative_to(index_dir)) for d in shard_dirs]}))


def shard_dirs(index_dir: str | Path) -> list[Path]:
    """The shard directories in corpus order; a missing or repeated shard of the encode driver is an error."""
    folder = Path(index_dir)
    if (folder / SHARDS_FILE).exists():
        return [folder / name for name in json.loads((folder / SHARDS_FILE).read_text())["shards"]]
    found = {}
    for child in sorted(p for p in folder.iterdir() if (p / "index").is_file()):
        record = read_record(child) or {}
        if "shard" not in record:
            raise ValueError(f"{child}: no o1e record saying which shard it is: write the shards with "
                             "o1e_tevatron.driver.encode --faiss_index_dir, or list them in " + SHARDS_FILE)
        index, count = record["shard"]
        if index in found:
            raise ValueError(f"{child} and {found[index]} are both shard {index}: keep one encoding per shard")
        found[index] = child
        total = count
    missing = sorted(set(range(total)) - set(found))
    if missing:
        raise ValueError(f"{folder}: shards {missing} of {total} are missing (their encoding did not finish): "
                         "encode them before searching")
    return [found[i] for i in range(total)]


def as_flat(index, chunk: int = 1 << 18):
    """A float16 scalar quantizer decoded into an IndexFlatIP (what faiss-gpu clones), chunk by chunk."""
    import faiss

    if isinstance(index, faiss.IndexFlat):
        return index
    flat = faiss.IndexFlatIP(index.d)
    for start in range(0, index.ntotal, chunk):
        flat.add(index.reconstruct_n(start, min(chunk, index.ntotal - start)))
    return flat


class ShardedIndex:
    """A faiss-like index (``d``, ``ntotal``, ``search``) over shard directories; row ``i`` is the
    ``i``-th docid of the shards in order, so Pyserini's FaissSearcher uses it unchanged."""

    def __init__(self, dirs: Sequence[Path], gpu: bool | None = None):
        import faiss

        self.dirs = list(dirs)
        self.docids, self.offsets = [], [0]
        check = DocidCheck("the shards")
        for folder in self.dirs:
            ids = read_docid_file(folder / "docid")
            index = self._read(folder)
            if index.ntotal != len(ids):
                raise ValueError(f"{folder}: the index holds {index.ntotal} vectors but docid lists {len(ids)} ids")
            if self.offsets[-1] and index.d != self.d:
                raise ValueError(f"{folder} holds {index.d}-d vectors, the shards before it {self.d}-d")
            self.d = index.d
            for docid in dict.fromkeys(ids):  # a max-steps DEBATER shard repeats each id M times in a row
                check(docid)
            self.docids.extend(ids)
            self.offsets.append(self.offsets[-1] + len(ids))
        self.ntotal = self.offsets[-1]
        self.docid_array = np.array(self.docids)
        gpus = faiss.get_num_gpus() if hasattr(faiss, "index_cpu_to_all_gpus") else 0  # faiss-gpu: the gpu extra
        if gpu and not gpus:
            logger.warning("no GPU that faiss can use (install the gpu extra, faiss-gpu): searching on the CPU")
        use_gpu = gpus > 0 and gpu is not False
        self.on_gpus = [self._to_gpus(self._read(folder)) for folder in self.dirs] if use_gpu else None

    @staticmethod
    def _read(folder: Path):
        import faiss
        return faiss.read_index(str(folder / "index"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)

    @staticmethod
    def _to_gpus(index):
        """One shard on all GPUs (faiss's sharding), float16 there."""
        import faiss

        options = faiss.GpuMultipleClonerOptions()
        options.shard, options.useFloat16 = True, True
        return faiss.index_cpu_to_all_gpus(as_flat(index), options)

    def _shard_search(self, shard: int, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        index = self.on_gpus[shard] if self.on_gpus else self._read(self.dirs[shard])
        size = self.offsets[shard + 1] - self.offsets[shard]
        scores, rows = index.search(queries, min(k, size))
        return scores, np.where(rows >= 0, rows + self.offsets[shard], -1)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each (nq, k), best first, ties by docid; rows of -1 past the corpus' end."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        parts = [self._shard_search(s, queries, k) for s in range(len(self.dirs))]
        scores, rows = self._merge(parts, k)
        cutoff = scores[:, -1]
        for shard, (shard_scores, _) in enumerate(parts):  # a shard cut at the k-th score may hide ties below a docid
            size = self.offsets[shard + 1] - self.offsets[shard]
            tied = np.flatnonzero((shard_scores.shape[1] < size) & (shard_scores[:, -1] >= cutoff))
            if len(tied):
                depth = shard_scores.shape[1]
                while True:
                    depth = min(2 * depth, size)
                    more = self._shard_search(shard, queries[tied], depth)
                    if depth == size or (more[0][:, -1] < cutoff[tied]).all():
                        break
                merged = self._merge([(scores[tied], rows[tied]), more], k)
                scores[tied], rows[tied] = merged
        return scores, rows

    def _merge(self, parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = np.concatenate([p[0] for p in parts], axis=1)
        rows = np.concatenate([p[1] for p in parts], axis=1)
        scores = np.where(rows >= 0, scores, -np.inf)
        # a row may come twice (from the tie pass): keep the first of equal rows after sorting
        docids = np.where(rows >= 0, self.docid_array[np.maximum(rows, 0)], "")
        order = np.lexsort((rows, docids, -scores), axis=1)
        scores, rows = np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)
        repeated = np.zeros_like(rows, dtype=bool)
        repeated[:, 1:] = (rows[:, 1:] == rows[:, :-1]) & (rows[:, 1:] >= 0)
        scores, rows = np.where(repeated, -np.inf, scores), np.where(repeated, -1, rows)  # not back as filler
        keep = np.argsort(rows < 0, axis=1, kind="stable")[:, :k]
        scores, rows = np.take_along_axis(scores, keep, 1), np.take_along_axis(rows, keep, 1)
        if scores.shape[1] < k:
            pad = k - scores.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
        return scores.astype(np.float32), rows

    def search_and_reconstruct(self, *args, **kwargs):
        raise NotImplementedError("pseudo-relevance feedback (--prf-depth) needs one index: not on a sharded index")


@functools.cache
def sharded_searcher_class():
    """Pyserini's FaissSearcher that also opens a sharded index directory (see the module docstring)."""
    from pyserini.search.faiss import FaissSearcher

    class ShardedFaissSearcher(FaissSearcher):
        def load_index(self, index_dir: str):
            if not is_sharded(index_dir):
                return super().load_index(index_dir)
            index = ShardedIndex(shard_dirs(index_dir), gpu=self.faiss_device != "cpu" or None)
            logger.info("searching %d shards of %s (%d vectors)", len(index.dirs), index_dir, index.ntotal)
            return index, index.docids

    return ShardedFaissSearcher
