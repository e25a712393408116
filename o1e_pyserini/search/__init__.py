"""Search: Pyserini's own commands with o1e registered (``python -m o1e_pyserini.search.faiss`` for dense
and thinking queries, ``.lucene`` for BM25 baselines, ``encode`` behind ``python -m o1e_pyserini.encode``),
topic reading, sharded faiss indexes, fusion with BM25 (``fusion``) and BM25 hard-negative mining
(``mine``, behind ``python -m o1e_pyserini.mine``)."""
