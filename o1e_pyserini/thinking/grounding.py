"""Grounded thinking: a query's top-K BM25 passages, for prompts that think from retrieved evidence.

A 135M model has little knowledge of its own to add, but it can read and restate (CSQE, LameR,
RADCoT). :class:`LuceneGrounder` retrieves the passages with Pyserini's ``LuceneSearcher`` at search
time (the encoder's template asks it per query); ``python -m o1e_pyserini.grounding`` adds the same
passages to training or synthesis rows as a ``grounding`` field. Both take BM25's natural top-K, the
positive included whenever BM25 finds it: no label is read, so training sees what search will see.

    python -m o1e_pyserini.grounding --input rows.jsonl --corpus corpus.jsonl --output rows.grounded.jsonl -k 3
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from o1e_tevatron.core import readers
from o1e_tevatron.core.errors import run_command
from o1e_tevatron.core.rows import passage_text

logger = logging.getLogger(__name__)


def stored_text(raw: str | None) -> str:
    """A passage's text from what a Lucene index stored: Pyserini's ``contents``, BEIR's ``title`` +
    ``text``, or the raw string itself."""
    if not raw:
        return ""
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    if not isinstance(doc, dict):
        return raw
    if isinstance(doc.get("contents"), str):
        return doc["contents"]
    return passage_text(doc.get("title") or None, str(doc.get("text", "")))


class LuceneGrounder:
    """query -> its top-``k`` BM25 passages from a Lucene index (a folder or a Pyserini prebuilt name).

    Results are memoized per query text (fast and think passes of one run search once), and the time
    spent searching is kept in ``seconds`` for the cost columns."""

    def __init__(self, index: str, k: int, k1: float = 0.9, b: float = 0.4, threads: int = 2):
        import o1e_pyserini  # noqa: F401  (Java before Pyserini starts it)
        from pyserini.search.lucene import LuceneSearcher

        if k < 1:
            raise ValueError(f"grounding needs k >= 1 passages, got {k}")
        if Path(index).is_dir():
            if not any(Path(index).glob("segments_*")):
                raise FileNotFoundError(f"grounding index {index}: not a Lucene index folder (no segments_* file)")
            self.searcher = LuceneSearcher(str(index))
        else:
            self.searcher = LuceneSearcher.from_prebuilt_index(index)
            if self.searcher is None:
                raise FileNotFoundError(f"grounding index {index!r} is neither a Lucene index folder nor a "
                                        "Pyserini prebuilt index name")
        self.searcher.set_bm25(k1, b)
        self.index, self.k, self.threads = str(index), k, threads
        self.memo: dict[str, list[str]] = {}
        self.seconds = 0.0

    def prefetch(self, queries: Sequence[str]) -> None:
        """Search the queries not seen yet, in one multi-threaded batch."""
        fresh = list(dict.fromkeys(q for q in queries if q not in self.memo))
        if not fresh:
            return
        started = time.perf_counter()
        ids = [str(i) for i in range(len(fresh))]
        hits = self.searcher.batch_search(fresh, ids, k=self.k, threads=self.threads)
        for qid, query in zip(ids, fresh):
            self.memo[query] = [stored_text(self.searcher.doc(h.docid).raw()) for h in hits.get(qid, [])]
        self.seconds += time.perf_counter() - started

    def __call__(self, query: str) -> list[str]:
        self.prefetch([query])
        return self.memo[query]


def ground_rows(input_path: Path, output: Path, grounder: LuceneGrounder, batch: int = 64) -> dict:
    """Copy JSONL rows to ``output`` (through a temporary file) with ``grounding`` = the query's passages."""
    rows = [row for _, row in readers.json_records(input_path, {"query": readers.nonblank_text})]
    partial = output.with_name(output.name + ".partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "w", encoding="utf-8") as out:
        for start in tqdm(range(0, len(rows), batch), desc="ground (bm25)", unit="batch"):
            chunk = rows[start:start + batch]
            grounder.prefetch([r["query"] for r in chunk])
            for row in chunk:
                out.write(json.dumps({**row, "grounding": grounder(row["query"])}, ensure_ascii=False) + "\n")
    os.replace(partial, output)
    return {"rows": len(rows), "k": grounder.k, "index": grounder.index, "seconds": round(grounder.seconds, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m o1e_pyserini.grounding", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="JSONL rows with a 'query' (training or synthesis rows)")
    parser.add_argument("--output", required=True, type=Path, help="the rows with 'grounding' added")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--index", help="a Lucene index folder or a Pyserini prebuilt index name")
    source.add_argument("--corpus", type=Path, help="a corpus JSONL (BEIR or Pyserini): its BM25 index is built once, "
                                                   "keyed by its content")
    parser.add_argument("-k", "--passages", type=int, default=3, help="passages per query (BM25's top K)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.output.resolve() == args.input.resolve():
        raise SystemExit(f"error: --output {args.output} is the input file: write the grounded rows elsewhere")
    if args.corpus is not None:
        from ..search.mine import corpus_index

        index = str(corpus_index(args.corpus))
    else:
        index = args.index
    report = ground_rows(args.input, args.output, LuceneGrounder(index, args.passages))
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    run_command(main)
