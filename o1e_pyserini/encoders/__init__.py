"""Pyserini query and document encoders, one module per family on the shared base: ``o1e`` (thinking
queries: fast, think, adaptive; thought backends and cache from ``o1e_pyserini.thinking``), ``debater``,
``repllama`` (the paper's Table 4 baseline) and ``augmented`` (any dense encoder given thought texts).
``base`` loads a family's checkpoint and encodes passages; ``registry`` is the one table from family
to encoder classes, registered into Pyserini's encoder maps (``o1e:`` / ``debater:`` specs)."""
