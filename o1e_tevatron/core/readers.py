"""Every file o1e reads, read one way: UTF-8 decoded with a located error, each record parsed and its
fields type-checked, and every refusal an :class:`~o1e_tevatron.core.errors.InputError` naming the file,
the line (or the record id) and what to do.

Decided here, once, for every command:

* **blank lines** (whitespace only) carry no record and are skipped; when one falls between records, one
  warning gives their count and the first (Pyserini's and Anserini's readers stop or fail at them, so
  o1e hands those a clean copy: :func:`clean_copy`);
* **an empty file** (no record) is refused: scoring, indexing or training on nothing only hides the mistake;
* **a repeated id** (document, query, topic, judgment) is refused, naming both lines; a run's repeated
  hit is the one exception: the best-ranked copy is kept, with a warning and the count (a run is a
  result, and multi-vector search can return a document twice);
* **null or a wrong type** where text, an id or a number belongs is refused, naming the field; an absent
  or null *title* is the empty title; blank query text is refused (it would score 0 without a word).
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import InputError
from .textfile import numbered_lines

logger = logging.getLogger(__name__)

#: Field names of a corpus (or query) line: BEIR (``_id``/``title``/``text``), Pyserini (``id``/``contents``),
#: BRIGHT (``content``), Tevatron's encode input (``docid`` / ``query_id`` + ``text`` / ``query``)
ID_FIELDS, TEXT_FIELDS = ("_id", "id", "doc_id", "docid", "query_id"), ("text", "contents", "content", "query")
#: Characters that would split or shift an id in a docid file read line by line (Pyserini strips lines)
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
Run = dict[str, list[tuple[str, float]]]  # query id -> [(doc id, score)], best first
Qrels = dict[str, dict[str, int]]


# ---- lines and JSON ---------------------------------------------------------------------------

def record_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of every non-blank line; an empty file is refused, blank lines between
    records are counted in one warning."""
    blank, first_blank, records = 0, None, 0
    for line_no, line in numbered_lines(path):
        if not line.strip():
            first_blank = first_blank or line_no
            blank += 1
            continue
        if blank:
            logger.warning("%s: %d blank line(s) among the records (first: line %d) skipped", path, blank, first_blank)
            blank = 0
        records += 1
        yield line_no, line
    if not records:
        raise InputError("no records: the file is empty", path, hint="give a file with at least one record")


def parse_json(text: str | bytes, path: str | Path, line: int | None = None) -> Any:
    """``json.loads`` whose every failure (bad JSON, nesting past the recursion limit, an integer of
    more digits than Python converts) is an input error at ``path:line``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg} at column {e.colno})", path, line if line is not None else e.lineno,
                         hint="fix or remove the line") from None
    except (ValueError, RecursionError) as e:
        raise InputError(f"not usable JSON ({str(e)[:120]})", path, line) from None


Check = Callable[[Any], Any]  # a field's value -> the value to keep; ValueError(why) when it will not do


def json_records(path: str | Path, fields: Mapping[str, Check] | None = None) -> Iterator[tuple[int, dict]]:
    """(line number, object) of a JSON-lines file; each ``fields`` name is checked (and converted) by
    its check, an absent field being ``None`` to it."""
    for line_no, line in record_lines(path):
        record = parse_json(line, path, line_no)
        yield line_no, checked_object(record, fields or {}, path, line_no)


def checked_object(record: Any, fields: Mapping[str, Check], path: str | Path, line: int | None) -> dict:
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {type(record).__name__}", path, line)
    checked = dict(record)
    for name, check in fields.items():
        try:
            checked[name] = check(record.get(name))
        except ValueError as e:
            why = str(e) if name in record else f"is missing (the object has: {', '.join(map(repr, record)) or 'nothing'})"
            raise InputError(f"'{name}' {why}", path, line) from None
    return checked


# ---- field checks -----------------------------------------------------------------------------

def text(value: Any) -> str:
    """A string of valid Unicode (JSON's ``\\ud800`` escapes give lone surrogates no tokenizer encodes)."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {_shown(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"has a lone surrogate at character {e.start} (not valid Unicode text)") from None
    return value


def nonblank_text(value: Any) -> str:
    if not text(value).strip():
        raise ValueError("is empty or whitespace only: give the text or remove the record")
    return value


def optional_text(value: Any) -> str:
    """A title: absent or null is the empty title."""
    return "" if value is None else text(value)


def record_id(value: Any) -> str:
    """A string or integer id, as a string that survives a docid file (no line break, no surrounding blank)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"must be a string or an integer id, got {_shown(value)}")
    value = text(str(value))
    if not value.strip() or value != value.strip() or any(c in value for c in LINE_BREAKS):
        raise ValueError(f"{value!r} is blank, spans lines or starts or ends with whitespace")
    return value


def string_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of strings, got {_shown(value)}")
    return [text(item) for item in value]


def _shown(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {json.dumps(value, ensure_ascii=False, default=str)[:60]}"


# ---- ids ----------------------------------------------------------------------------------------

class UniqueIds:
    """Refuses a repeated id naming both lines; holds only the ids (the first line is found again on error)."""

    def __init__(self, path: str | Path, what: str, key: Callable[[int, str], str | None]):
        self.path, self.what, self.key, self.seen = path, what, key, set()

    def check(self, line_no: int, item_id: Any) -> None:
        if item_id in self.seen:
            first = next(n for n, line in numbered_lines(self.path) if n < line_no and self.key(n, line) == item_id)
            raise InputError(f"{self.what} {item_id!r} again (first on line {first})", self.path, line_no,
                             hint=f"{self.what}s must be unique: remove or rename one")
        self.seen.add(item_id)


def _json_key(*names: str) -> Callable[[int, str], str | None]:
    """The id of a JSON line (for :class:`UniqueIds` looking for the first occurrence)."""
    def key(_: int, line: str) -> str | None:
        try:
            record = json.loads(line)
            return next(str(record[name]) for name in names if name in record)
        except (ValueError, TypeError, StopIteration, RecursionError):
            return None
    return key


# ---- corpus, queries, topics -----------------------------------------------------------------

def corpus(path: str | Path) -> Iterator[tuple[int, str, str, str]]:
    """(line number, doc id, title, text) of a corpus in JSON lines: BEIR, Pyserini or BRIGHT field names. A passage
    without text (``"text": null``) is refused, not embedded as "None"."""
    ids = UniqueIds(path, "document id", _json_key(*ID_FIELDS))
    for line_no, record in json_records(path):
        id_field = next((name for name in ID_FIELDS if name in record), None)
        text_field = next((name for name in TEXT_FIELDS if name in record), None)
        if id_field is None or text_field is None:
            raise InputError(f"a corpus line needs one of {ID_FIELDS} and one of {TEXT_FIELDS}", path, line_no)
        record = checked_object(record, {id_field: record_id, text_field: text, "title": optional_text}, path, line_no)
        ids.check(line_no, record[id_field])
        yield line_no, record[id_field], record["title"], record[text_field]


def beir_queries(path: str | Path) -> dict[str, str]:
    """``{query id: text}`` of a BEIR ``queries.jsonl`` (``_id``, ``text``)."""
    queries, ids = {}, UniqueIds(path, "query id", _json_key("_id"))
    for line_no, record in json_records(path, {"_id": record_id, "text": nonblank_text}):
        ids.check(line_no, record["_id"])
        queries[record["_id"]] = record["text"]
    return queries


def tsv_fields(line: str, count: int, names: str, path: str | Path, line_no: int) -> list[str]:
    """``line`` split at tabs into exactly ``count`` fields."""
    fields = line.split("\t")
    if len(fields) != count:
        raise InputError(f"expected {names} ({count - 1} tab{'s' if count > 2 else ''}), found {len(fields) - 1}",
                         path, line_no, hint="remove the extra tabs from the text" if len(fields) > count else None)
    return fields


def topics(path: str | Path) -> dict[str, str]:
    """``{query id: text}`` of a ``query_id<TAB>text`` topics file (optionally gzipped)."""
    queries, ids = {}, UniqueIds(path, "query id", lambda _, line: line.split("\t", 1)[0])
    for line_no, line in record_lines(path):
        query_id, query = tsv_fields(line, 2, "query_id<TAB>text", path, line_no)
        try:
            query_id, query = record_id(query_id), nonblank_text(query)
        except ValueError as e:
            raise InputError(f"query {query_id!r}: {e}", path, line_no) from None
        ids.check(line_no, query_id)
        queries[query_id] = query
    return queries


def clean_copy(path: str | Path, scratch: str | Path) -> str | None:
    """A copy of a line-based file without what Pyserini's and Anserini's readers fail on (a byte-order
    mark, blank lines, CRLF) under ``scratch`` at the same path (Pyserini picks its topic reader by
    words in the path); None when the file is clean already."""
    path = str(path)
    lines = [line for _, line in record_lines(path)]
    with open(path, "rb") as f:
        raw = f.read()
    cleaned = "".join(line + "\n" for line in lines)
    if path.endswith(".gz") or raw == cleaned.encode("utf-8"):
        return None
    copy = os.path.join(str(scratch), os.path.abspath(path).lstrip(os.sep))
    os.makedirs(os.path.dirname(copy), exist_ok=True)
    with open(copy, "w", encoding="utf-8", newline="") as out:
        out.write(cleaned)
    logger.info("%s has a byte-order mark, blank lines or CRLF line ends: Pyserini reads a clean copy", path)
    return copy


# ---- judgments and runs ----------------------------------------------------------------------

def _relevance(value: str, path: str | Path, line_no: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(f"the relevance {value!r} is not an integer", path, line_no,
                         hint="qrels judge with integers (0, 1, 2)") from None


def _judge(judged: Qrels, query_id: str, doc_id: str, relevance: int, path: str | Path, line_no: int) -> None:
    if doc_id in judged[query_id]:
        raise InputError(f"query {query_id!r} judges document {doc_id!r} twice", path, line_no,
                         hint="keep one judgment per query and document")
    judged[query_id][doc_id] = relevance


def beir_qrels(path: str | Path) -> Qrels:
    """A BEIR qrels TSV (``query-id<TAB>corpus-id<TAB>score``, a header line optional)."""
    judged: Qrels = defaultdict(dict)
    for line_no, line in record_lines(path):
        fields = tsv_fields(line, 3, "query-id<TAB>corpus-id<TAB>score", path, line_no)
        if not judged and fields[0] == "query-id":
            continue
        _judge(judged, fields[0], fields[1], _relevance(fields[2], path, line_no), path, line_no)
    return _judged(judged, path)


def trec_qrels(path: str | Path) -> Qrels:
    """TREC qrels (``query_id iteration doc_id relevance``, an integer relevance); a line of another
    shape (a BEIR TSV, a run file) is refused naming the line."""
    judged: Qrels = defaultdict(dict)
    for line_no, line in record_lines(path):
        cols = line.split()
        if len(cols) != 4:
            raise InputError(f"a TREC qrels line has 4 columns (query_id 0 doc_id relevance), this one {len(cols)}",
                             path, line_no, hint="a BEIR qrels TSV? use --dataset with --data-dir" if len(cols) == 3 else None)
        _judge(judged, cols[0], cols[2], _relevance(cols[3], path, line_no), path, line_no)
    return _judged(judged, path)


def _judged(judged: Qrels, path: str | Path) -> Qrels:
    if not judged:
        raise InputError("no judgments (only a header)", path, hint="give at least one judgment")
    return dict(judged)


def trec_run(path: str | Path) -> Run:
    """A TREC run file, each query's hits ordered by score; a repeated hit keeps its best-ranked copy
    (counted in a warning)."""
    run: Run = defaultdict(list)
    for line_no, line in record_lines(path):
        cols = line.split()
        if len(cols) != 6:
            raise InputError(f"a TREC run line has 6 columns (query_id Q0 doc_id rank score tag), this one {len(cols)}",
                             path, line_no)
        try:
            score = float(cols[4])
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise InputError(f"the score (5th column) {cols[4]!r} is not a finite number", path, line_no)
        run[cols[0]].append((cols[2], score))
    return dedup_run({q: sorted(hits, key=lambda hit: -hit[1]) for q, hits in run.items()})[0]


def dedup_run(run: Run) -> tuple[Run, int]:
    """Keep each (query, doc) once, at its best rank; returns the run and how many hits went."""
    cleaned, removed = {}, 0
    for query_id, hits in run.items():
        seen, kept = set(), []
        for doc_id, score in hits:
            if doc_id in seen:
                removed += 1
                continue
            seen.add(doc_id)
            kept.append((doc_id, score))
        cleaned[query_id] = kept
    if removed:
        logger.warning("removed %d duplicate doc ids from the run (kept the best-ranked copy)", removed)
    return cleaned, removed


# ---- whole-file JSON and YAML -----------------------------------------------------------------

def whole_text(path: str | Path) -> str:
    """The file's text, decoded as :func:`numbered_lines` does (so a parser's line is the file's line)."""
    return "\n".join(line for _, line in numbered_lines(path))


def json_object(path: str | Path, fields: Mapping[str, Check]) -> dict:
    """A file holding one JSON object whose keys are among ``fields``, each checked (a prompts file)."""
    record = parse_json(whole_text(path), path)
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {_shown(record)}", path, hint=f"use keys among {sorted(fields)}")
    if set(record) - set(fields):
        raise InputError(f"unknown keys {sorted(set(record) - set(fields))}", path,
                         hint=f"use keys among {sorted(fields)}")
    return checked_object(record, {name: check for name, check in fields.items() if name in record}, path, None)


def yaml_file(path: str | Path) -> Any:
    """``yaml.safe_load`` of a file (never a tag that builds objects), a syntax error naming its line."""
    import yaml

    source = whole_text(path)
    try:
        return yaml.safe_load(source)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise InputError(f"not valid YAML ({getattr(e, 'problem', None) or e})", path,
                         mark.line + 1 if mark is not None else None) from None
