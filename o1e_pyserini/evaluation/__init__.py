"""The evaluation harness behind ``python -m o1e_pyserini.eval``: index, search, score, compare."""
