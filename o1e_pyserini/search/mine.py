"""Hard negatives for training: ``python -m o1e_pyserini.mine``.

Turns a BEIR folder's split (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) into Tevatron training rows
``{query_id, query, positive_passages, negative_passages}`` whose negatives are Pyserini BM25 hits
(k1=0.9, b=0.4) of the query: the top ``--depth`` hits minus the query's positives and any document
whose id equals the query's id, then ``--negatives`` of them drawn at random per query (seeded by the
query id, so a rerun writes the same file), as Tevatron's examples do, or the top ones with
``--take top``. The Lucene index is built once per corpus content and reused.

    python -m o1e_pyserini.mine --input ../shared/data/scifact --split train --output data/scifact-train.jsonl
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from o1e_pyserini.evaluation.datasets import JsonlDocs
from o1e_pyserini.evaluation import retrievers
from o1e_tevatron.core.errors import run_command
from o1e_tevatron.core.fingerprint import O1E_CACHE, file_digest
from o1e_tevatron.core.rows import read_beir

logger = logging.getLogger(__name__)


def corpus_index(corpus: Path, index_root: Path | None = None) -> Path:
    """The BM25 index of ``corpus``, under a name that is the digest of its content (never a stale one)."""
    digest = file_digest(corpus)
    bm25 = retrievers.RetrieverSpec("bm25")
    index_dir = (index_root or O1E_CACHE / "indexes") / f"mine-bm25-{digest[:20]}"
    return retrievers.build_index(bm25, JsonlDocs(corpus).docs_iter(), index_dir, bm25.content_key(digest))


def mine(input_dir: Path, split: str, output: Path, depth: int = 30, negatives: int = 7, take: str = "sample",
         seed: int = 42, index_root: Path | None = None, threads: int = 2) -> dict:
    """Write the rows to ``output`` (through a temporary file) and return a report."""
    from pyserini.search.lucene import LuceneSearcher

    if negatives < 1 or depth < negatives:
        raise ValueError(f"need 1 <= --negatives ({negatives}) <= --depth ({depth})")
    if output.resolve().is_relative_to(input_dir.resolve()):
        raise ValueError(f"--output {output} lies inside the input folder {input_dir}: write it elsewhere")
    rows = list(read_beir(input_dir, split))
    index_dir = corpus_index(input_dir / "corpus.jsonl", index_root)
    searcher = LuceneSearcher(str(index_dir))
    depth_searched = depth + max(len(r.record["positive_passages"]) for r in rows) + 1  # room for exclusions
    counts: Counter = Counter()
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with open(partial, "w", encoding="utf-8") as out:
        for start in tqdm(range(0, len(rows), 64), desc="mine bm25", unit="batch"):
            batch = rows[start:start + 64]
            hits = searcher.batch_search([r.query for r in batch], [r.row_id for r in batch], k=depth_searched,
                                         threads=threads)
            for row in batch:
                excluded = {p["docid"] for p in row.record["positive_passages"]} | {row.row_id}
                pool = [h.docid for h in hits.get(row.row_id, []) if h.docid not in excluded][:depth]
                chosen = pool[:negatives] if take == "top" else random.Random(f"{seed}:{row.row_id}").sample(
                    pool, min(negatives, len(pool)))
                counts[len(chosen)] += 1
                out.write(json.dumps({**row.record, "negative_passages": [stored_passage(searcher, d) for d in chosen]},
                                     ensure_ascii=False) + "\n")
    os.replace(partial, output)
    report = {"rows": len(rows), "index": str(index_dir), "depth": depth, "negatives": negatives, "take": take,
              "rows_by_negative_count": dict(sorted(counts.items())),
              "rows_short_of_negatives": sum(c for n, c in counts.items() if n < negatives)}
    return report


def stored_passage(searcher, docid: str) -> dict:
    """A passage as the index stored it (``title text``, as indexed and as trained on): the corpus is not held."""
    return {"docid": docid, "title": "", "text": json.loads(searcher.doc(docid).raw())["contents"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m o1e_pyserini.mine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/")
    parser.add_argument("--split", default="train", help="qrels/<split>.tsv names the queries and their positives")
    parser.add_argument("--output", required=True, type=Path, help="Tevatron training rows (JSONL)")
    parser.add_argument("--depth", type=int, default=30, help="BM25 hits considered per query, positives excluded")
    parser.add_argument("--negatives", type=int, default=7, help="negatives per query")
    parser.add_argument("--take", choices=("sample", "top"), default="sample",
                        help="draw the negatives at random from the hits (seeded per query) or take the top ones")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--index-root", type=Path, default=None, help="where the BM25 index is cached "
                                                                       "(default $O1E_CACHE/indexes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    report = mine(args.input, args.split, args.output, args.depth, args.negatives, args.take, args.seed,
                  args.index_root)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    run_command(main)
