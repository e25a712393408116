"""Deprecated (one release): moved to :mod:`o1e_pyserini.encoders.augmented`."""
from o1e_tevatron.core.deprecation import alias_module

alias_module(globals(), "o1e_pyserini.encoders.augmented")
