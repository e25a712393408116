"""Training rows -> (query, thought, passages): text only; tokenization is the collator's job.

Two row formats are read, and may be mixed:
  Tevatron   {query_id, query, positive_passages: [{docid, title, text}], negative_passages: [...], thought}
  authors'   {query, pos: [str], neg: [str], thought, pos_scores, neg_scores}
Either may carry ``grounding``: the query's retrieved passages (strings or {title, text}, best first)
that a chat-layout checkpoint with grounding shows in its prompt (``python -m o1e_pyserini.grounding``).

Local JSONL files are validated line by line once, up front, so a bad line fails before training
starts with its file and line number; afterwards only byte offsets are kept in memory, so files far
larger than RAM train fine.
"""
from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .core.errors import InputError
from .core.readers import parse_json
from .core.rows import DataFormatError, TrainExample, parse_row

logger = logging.getLogger(__name__)


@dataclass
class RowStats:
    rows: int = 0
    without_thought: int = 0
    too_few_negatives: int = 0
    no_negatives: list = field(default_factory=list)


class JsonlRows:
    """Random access to the rows of local JSONL files by byte offset; rows are parsed on access."""

    def __init__(self, paths: Sequence[str | os.PathLike], separator: str = " "):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise DataFormatError("no training files (.jsonl / .json) given")
        self.separator = separator
        self.index: list[tuple[int, int, int]] = []  # (file, byte offset, line number)
        self._handles: dict = {}
        for file_no, path in enumerate(self.paths):
            with open(path, "rb") as f:
                offset = 0
                for line_no, line in enumerate(tqdm(f, desc=f"checking {path.name}", unit=" rows",
                                                    disable=None, leave=False), start=1):
                    if line.strip():
                        self.index.append((file_no, offset, line_no))
                    offset += len(line)
        if not self.index:
            raise InputError("no training rows: the file is empty", ", ".join(map(str, self.paths)),
                             hint="give at least one row")

    def __len__(self) -> int:
        return len(self.index)

    def where(self, i: int) -> str:
        file_no, _, line_no = self.index[i]
        return f"{self.paths[file_no]}:{line_no}"

    def __getitem__(self, i: int) -> TrainExample:
        file_no, offset, _ = self.index[i]
        handle = self._handles.get((os.getpid(), file_no))
        if handle is None:  # one handle per file and per process (DataLoader workers fork)
            handle = self._handles[(os.getpid(), file_no)] = open(self.paths[file_no], "rb")
        handle.seek(offset)
        line = handle.readline()
        file_no, _, line_no = self.index[i]
        try:
            text = line.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"not UTF-8 text (byte {e.start + 1} of the line)", self.paths[file_no], line_no,
                             hint="convert the file to UTF-8") from None
        return parse_row(parse_json(text, self.paths[file_no], line_no), self.where(i), self.separator)

    def __getstate__(self):
        return {**self.__dict__, "_handles": {}}


class HFRows:
    """Rows of a ``datasets`` dataset (hub name or local files)."""

    def __init__(self, dataset, name: str, separator: str = " "):
        self.dataset, self.name, self.separator = dataset, name, separator

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> TrainExample:
        return parse_row(self.dataset[i], f"{self.name}[{i}]", self.separator)


def load_train_rows(data_args):
    """Rows from ``--train_dir`` (a folder of .jsonl/.json files, or one file) or ``--dataset_name``."""
    if data_args.train_dir is not None:
        return JsonlRows(sorted(data_args.train_path), data_args.passage_field_separator)
    import datasets

    dataset = datasets.load_dataset(data_args.dataset_name, data_args.dataset_language,
                                    split=data_args.dataset_split, cache_dir=data_args.data_cache_dir)
    return HFRows(dataset, f"{data_args.dataset_name}:{data_args.dataset_split}", data_args.passage_field_separator)


class TrainDataset(Dataset):
    """One training group per query: query text, the thought or None (plain query), 1 positive +
    (train_n_passages - 1) negatives, and teacher scores when every passage has one.

    Sampling is deterministic in (seed, epoch, index): z ~ Bernoulli(plain_query_prob) picks the
    plain query; negatives are drawn without replacement, or with replacement (counted, warned)
    when a row has too few, as Tevatron does.
    """

    def __init__(self, rows, train_n_passages: int = 16, plain_query_prob: float = 0.1,
                 require_thought: bool = False, positive_passage_no_shuffle: bool = False,
                 negative_passage_no_shuffle: bool = False, seed: int = 42, require_grounding: bool = False):
        self.rows = rows
        self.n_negatives = train_n_passages - 1
        self.plain_query_prob = plain_query_prob
        self.positive_passage_no_shuffle = positive_passage_no_shuffle
        self.negative_passage_no_shuffle = negative_passage_no_shuffle
        self.seed = seed
        self.epoch = 0
        self.stats = self._check(require_thought, require_grounding)

    def _check(self, require_thought: bool, require_grounding: bool = False) -> RowStats:
        """Parse every row once before training, so a bad line fails now and not at step 10,000."""
        stats = RowStats(rows=len(self.rows))
        for i in tqdm(range(len(self.rows)), desc="checking training rows", disable=None):
            ex = self.rows[i]
            where = self.rows.where(i) if hasattr(self.rows, "where") else f"row {i}"
            if require_grounding and ex.grounding is None:
                raise DataFormatError(f"{where}: row {ex.query_id!r} has no 'grounding' passages, which the chat "
                                      "layout with --grounding_passages reads (python -m o1e_pyserini.grounding adds them)")
            if ex.thought is None:
                if require_thought:
                    raise DataFormatError(f"{where}: row {ex.query_id!r} has no thought (--require_thought)")
                stats.without_thought += 1
            if len(ex.negatives) < self.n_negatives:
                stats.too_few_negatives += 1
                if not ex.negatives:
                    stats.no_negatives.append(where)
        if stats.no_negatives:
            raise DataFormatError(
                f"{len(stats.no_negatives)} rows have no negatives but train_n_passages={self.n_negatives + 1} "
                f"needs {self.n_negatives}; first: {stats.no_negatives[:3]} (use --train_n_passages 1)")
        if stats.without_thought:
            logger.warning("%d of %d rows have no thought: they train as plain queries", stats.without_thought,
                           stats.rows)
        if stats.too_few_negatives:
            logger.warning("%d of %d rows have fewer than %d negatives: sampled with replacement",
                           stats.too_few_negatives, stats.rows, self.n_negatives)
        return stats

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        ex = self.rows[i]
        rng = random.Random(f"{self.seed}:{self.epoch}:{i}")
        plain = ex.thought is None or rng.random() < self.plain_query_prob
        pos = 0 if self.positive_passage_no_shuffle else rng.randrange(len(ex.positives))
        n = self.n_negatives
        if n == 0:
            negs = []
        elif len(ex.negatives) < n:
            negs = rng.choices(range(len(ex.negatives)), k=n)
        elif self.negative_passage_no_shuffle:
            negs = list(range(n))
        else:
            negs = rng.sample(range(len(ex.negatives)), n)
        scores = None
        if ex.positive_scores is not None and ex.negative_scores is not None:
            scores = [ex.positive_scores[pos]] + [ex.negative_scores[j] for j in negs]
        return {
            "query": ex.query,
            "thought": None if plain else ex.thought,
            "passages": [ex.positives[pos]] + [ex.negatives[j] for j in negs],
            "teacher_scores": scores,
            "grounding": ex.grounding,
        }
