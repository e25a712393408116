"""The training-row format, read and checked with file:line errors: the trainer's rows (``parse_row``),
synthesis's and mining's rows with a stable id (``training_row``), and the rows of a BEIR folder's judged
queries (``read_beir``). Pure Python, so the search side (``python -m o1e_pyserini.mine``) reads a BEIR
folder into rows exactly as the trainer and the teacher do.

Two row formats are read, and may be mixed:
  Tevatron   {query_id, query, positive_passages: [{docid, title, text}], negative_passages: [...], thought}
  authors'   {query, pos: [str], neg: [str], thought, pos_scores, neg_scores}
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from . import readers
from .errors import InputError


def passage_text(title: str | None, text: str, separator: str = " ") -> str:
    """A passage as text: BEIR's and Tevatron's ``title + separator + text``, the text alone without a title."""
    return f"{title}{separator}{text}" if title else text



#: The training side's name for o1e's one input error: a row that cannot be used, named by file and line
DataFormatError = InputError


@dataclass
class TrainExample:
    query_id: str
    query: str
    thought: Optional[str]
    positives: list[str]
    negatives: list[str]
    positive_scores: Optional[list[float]] = None
    negative_scores: Optional[list[float]] = None
    grounding: Optional[list[str]] = None


def _encodable(text: str, what: str, where: str) -> str:
    """JSON's \\ud800-style escapes can give lone surrogates, which no tokenizer can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataFormatError(f"{where}: {what} has a lone surrogate {text[e.start]!r} at character {e.start} "
                              f"(not valid Unicode text)") from None
    return text


def _passage_text(passage, separator: str, where: str) -> str:
    if isinstance(passage, str):
        return _encodable(passage, "a passage", where)
    if isinstance(passage, dict) and isinstance(passage.get("text"), str):
        title = passage.get("title")
        if title is not None and not isinstance(title, str):
            raise DataFormatError(f"{where}: a passage title must be a string, got {str(title)[:80]!r}")
        return _encodable(passage_text(title, passage["text"], separator), "a passage", where)
    raise DataFormatError(f"{where}: a passage must be a string or {{title, text}}, got {str(passage)[:80]!r}")


def _scores(row: dict, key: str, n: int, where: str) -> Optional[list[float]]:
    scores = row.get(key)
    if scores is None:
        return None
    if not isinstance(scores, list) or len(scores) != n:
        raise DataFormatError(f"{where}: {key} must list one score per passage ({n})")
    for i, score in enumerate(scores):
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise DataFormatError(f"{where}: {key}[{i}] must be a finite number, got {score!r}")
    return [float(s) for s in scores]


def parse_row(row, where: str, separator: str = " ") -> TrainExample:
    """Validate one row of either format; ``where`` (e.g. 'train.jsonl:12') goes into every error."""
    if not isinstance(row, dict):
        raise DataFormatError(f"{where}: a row must be a JSON object, got {type(row).__name__}")
    if "positive_passages" in row:
        pos_key, neg_key = "positive_passages", "negative_passages"
    elif "pos" in row:
        pos_key, neg_key = "pos", "neg"
    else:
        raise DataFormatError(f"{where}: row has neither 'positive_passages' (Tevatron) nor 'pos' (authors' format)")
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        raise DataFormatError(f"{where}: empty or missing query")
    positives = row.get(pos_key) or []
    if not isinstance(positives, list) or not positives:
        raise DataFormatError(f"{where}: no positive passages in '{pos_key}'")
    negatives = row.get(neg_key) or []
    if not isinstance(negatives, list):
        raise DataFormatError(f"{where}: '{neg_key}' must be a list")
    _encodable(query, "the query", where)
    thought = row.get("thought")
    if thought is not None and not isinstance(thought, str):
        raise DataFormatError(f"{where}: 'thought' must be a string")
    if thought is not None:
        _encodable(thought, "the thought", where)
    grounding = row.get("grounding")
    if grounding is not None and not isinstance(grounding, list):
        raise DataFormatError(f"{where}: 'grounding' must be a list of passages")
    return TrainExample(
        query_id=str(row.get("query_id", row.get("_id", where))),
        query=query,
        thought=thought if thought and thought.strip() else None,
        positives=[_passage_text(p, separator, where) for p in positives],
        negatives=[_passage_text(p, separator, where) for p in negatives],
        positive_scores=_scores(row, "pos_scores", len(positives), where),
        negative_scores=_scores(row, "neg_scores", len(negatives), where),
        grounding=None if grounding is None else [_passage_text(p, separator, where) for p in grounding],
    )


@dataclass(frozen=True)
class TrainingRow:
    row_id: str
    query: str
    positives: tuple[str, ...]
    record: dict  # the row as it will be written back out, extra fields kept
    source: str  # "file:line", for error messages
    grounding: Optional[tuple[str, ...]] = None  # the query's retrieved passages, best first (o1e_pyserini.grounding)


def row_id_of(record: dict, positives: tuple[str, ...]) -> str:
    if record.get("query_id") not in (None, ""):
        return str(record["query_id"])
    digest = hashlib.sha1(json.dumps([record["query"], list(positives)], ensure_ascii=False).encode())
    return "sha1:" + digest.hexdigest()[:16]


def training_row(record: dict, source: str) -> TrainingRow:
    """One JSON object in either row format, checked exactly as the trainer checks it; errors name ``source``."""
    example = parse_row(record, source)
    positives = tuple(example.positives)
    if not all(p.strip() for p in positives):
        raise InputError(f"{source}: row has an empty positive passage")
    grounding = tuple(example.grounding) if example.grounding is not None else None
    return TrainingRow(row_id_of(record, positives), example.query, positives, record, source, grounding)


def read_beir(folder: Path, split: str) -> Iterator[TrainingRow]:
    """One row per judged query of a BEIR folder, read by ``core.readers`` (positives: relevance > 0)."""
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.exists():
        raise FileNotFoundError(f"{folder} is a BEIR folder without qrels/{split}.tsv (see --qrels_split)")
    positives = {query_id: [d for d, relevance in judged.items() if relevance > 0]
                 for query_id, judged in readers.beir_qrels(qrels_path).items()}
    needed = {d for ds in positives.values() for d in ds}
    corpus = {doc_id: (title, text) for _, doc_id, title, text in readers.corpus(folder / "corpus.jsonl")
              if doc_id in needed}
    queries_path = folder / "queries.jsonl"
    for query_id, query in readers.beir_queries(queries_path).items():
        if not positives.get(query_id):
            continue
        missing = [d for d in positives[query_id] if d not in corpus]
        if missing:
            raise InputError(f"query {query_id} names docids absent from corpus.jsonl: {missing[:10]}", qrels_path,
                             hint="use the qrels of this corpus")
        record = {
            "query_id": query_id,
            "query": query,
            "positive_passages": [{"docid": d, "title": corpus[d][0], "text": corpus[d][1]} for d in positives[query_id]],
            "negative_passages": [],
        }
        yield training_row(record, f"{queries_path}: query {query_id}")
