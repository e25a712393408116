"""Pyserini's search CLIs with o1e registered: ``python -m o1e_pyserini.search.faiss`` (dense, thinking
queries) and ``python -m o1e_pyserini.search.lucene`` (BM25 baselines)."""
