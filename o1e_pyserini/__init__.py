"""o1e's search side: thought-augmented query encoders for Pyserini, and the evaluation harness.

Four rooms: ``encoders/`` (one per family), ``thinking/`` (thought backends, cache, adaptive policy),
``search/`` (Pyserini's commands, fusion, mining), ``evaluation/`` (datasets, retrievers, scoring, the
``eval`` command). At the top: the commands users type (``python -m o1e_pyserini.eval|encode|think|mine|
grounding``), the mteb wrapper and shared flag types. From the training side it imports only
``o1e_tevatron.core``, ``.families`` and ``.models`` (tests/test_layering.py).

Importing this package prepares Java for Pyserini 1.6.0 (see ``o1e_tevatron.core.java``).
"""
from o1e_tevatron.core.java import prepare_java

prepare_java()
