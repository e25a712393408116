"""Thinking before embedding: where thoughts come from and when a query thinks.

``backends``: thought backends (Hugging Face fused think+embed, vLLM, an OpenAI-compatible server,
recorded thoughts) with the nucleus sampler and eq. 11's averaging; ``cache``: seeded thoughts kept in
SQLite keyed by checkpoint, settings and query; ``adaptive``: the per-query policy (think where the fast
run is uncertain); ``grounding``: the BM25 passages a grounded checkpoint thinks from; ``parts``: the
``python -m o1e_pyserini.think`` command (thoughts in parts across processes, merged). Importing the
backends' names from this package (the old module ``o1e_pyserini.thinking``) is deprecated for one release."""
from o1e_tevatron.core.deprecation import moved_names

__getattr__ = moved_names(__name__, "o1e_pyserini.thinking.backends")
