"""python -m o1e_pyserini.search.lucene: Pyserini's BM25 search (``pyserini.search.lucene``, every flag
unchanged) with Java prepared for Pyserini 1.6.0, for baselines and hybrid runs next to o1e's dense runs.

    python -m o1e_pyserini.search.lucene --index DIR --topics topics.tsv --output bm25.txt --bm25
"""
import runpy
import sys

import o1e_pyserini  # noqa: F401  (prepares Java before Pyserini starts it)


def main(argv=None) -> None:
    sys.argv = ["pyserini.search.lucene"] + list(sys.argv[1:] if argv is None else argv)
    runpy.run_module("pyserini.search.lucene", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
