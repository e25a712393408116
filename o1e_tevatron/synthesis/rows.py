"""Training rows for synthesis, read from any of the three inputs the trainer's data comes from.

* Tevatron rows: ``{query_id, query, positive_passages: [{docid, title, text}], negative_passages}``;
* the authors' rows: ``{query, pos: [str], neg: [str], ...}``;
* a BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv): one Tevatron row per query with
  its positives and no negatives.

Every row gets a stable ``row_id`` (its query_id, or a hash of query and positives) so that a
restarted run can tell which rows are done. Rows are streamed: only their ids are held, so inputs
the size of MS MARCO's with 15 negatives per row do not have to fit in memory.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Iterator

from o1e_tevatron.core.deprecation import moved_names
from o1e_tevatron.core.errors import InputError
from o1e_tevatron.core.readers import json_records
from o1e_tevatron.core.rows import TrainingRow, read_beir, training_row

# one release: the row format moved to core (synthesis's parse_row is core.rows.training_row)
__getattr__ = moved_names(__name__, {"parse_row": "o1e_tevatron.core.rows:training_row",
                                     "row_id_of": "o1e_tevatron.core.rows"})

logger = logging.getLogger(__name__)


def iter_jsonl(path: Path) -> Iterator[tuple[dict, str]]:
    """(object, "file:line") for each record of a JSON-lines file (``core.readers.json_records``)."""
    for line_no, record in json_records(path):
        yield record, f"{path}:{line_no}"


def output_records(path: Path) -> Iterator[tuple[dict, str]]:
    """:func:`iter_jsonl` of an output o1e appends to, which (unlike an input) may still be empty."""
    return iter_jsonl(path) if path.stat().st_size else iter(())


def is_beir_folder(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").exists() and (path / "queries.jsonl").exists()


def jsonl_files(path: str | Path) -> list[Path]:
    """A JSONL file, or every ``*.jsonl`` in a folder, in name order."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no *.jsonl files in {path}")
    return files


def iter_records(path: str | Path) -> Iterator[tuple[dict, str]]:
    """(object, "file:line") of :func:`jsonl_files`."""
    for file in jsonl_files(path):
        yield from iter_jsonl(file)


def count_records(path: str | Path) -> int:
    """Non-blank lines of :func:`jsonl_files` (a progress bar's total, without parsing JSON)."""
    total = 0
    for file in jsonl_files(path):
        with open(file, "rb") as f:
            total += sum(1 for line in f if line.strip())
    return total


def iter_rows(path: str | Path, qrels_split: str = "train") -> Iterator[TrainingRow]:
    """Rows of a JSONL file, of every ``*.jsonl`` in a folder, or of a BEIR folder; ids must be unique."""
    path = Path(path)
    if is_beir_folder(path):
        return unique_rows(read_beir(path, qrels_split))
    return unique_rows(training_row(record, source) for record, source in iter_records(path))


def unique_rows(rows: Iterable[TrainingRow]) -> Iterator[TrainingRow]:
    """The rows, failing at the first repeated id (only ids and sources are held)."""
    seen: dict[str, str] = {}
    for row in rows:
        if row.row_id in seen:
            raise InputError(f"{row.source}: row id {row.row_id!r} repeats {seen[row.row_id]}; "
                             "each row must be unique so that a restart can tell what is done")
        seen[row.row_id] = row.source
        yield row


def refuse_writing_into_input(input_path: str, **outputs: str | None) -> None:
    """Outputs are appended to, and a restart cuts their torn last line: an output that is the input
    (through a link too) or lies inside an input folder would eat the user's rows. ``outputs``: flag
    name -> path."""
    source = Path(input_path).resolve()
    for flag, path in outputs.items():
        if path is None:
            continue
        target = Path(path).resolve()
        same = target == source or (target.exists() and source.exists() and os.path.samefile(target, source))
        if same or source in target.parents:
            raise ValueError(f"--{flag} {path} is {'the input' if same else 'inside the input folder'} "
                             f"--input_path {input_path}: it would be overwritten; write the output elsewhere")


def resume_output(path: Path) -> set[str]:
    """Row ids already in an output that rows are appended to; a torn last line (the process was
    killed mid-write) is cut off first, so the restart neither loses nor repeats a row."""
    if not path.exists():
        return set()
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        end = size
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            block = f.read(end - start)
            if end == size and block.endswith(b"\n"):
                break
            cut = block.rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                break
            end = start
        if end != size:
            logger.warning("%s: dropping a torn last line (%d bytes) left by an interrupted run", path, size - end)
            f.truncate(end)
    return {training_row(record, source).row_id for record, source in output_records(path)}
