"""Deprecated (one release): moved to :mod:`o1e_tevatron.families.registry`."""
from o1e_tevatron.core.deprecation import alias_module

alias_module(globals(), "o1e_tevatron.families.registry")
