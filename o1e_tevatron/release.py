"""Deprecated (one release): moved to :mod:`o1e_tevatron.families.release`."""
from o1e_tevatron.core.deprecation import alias_module

alias_module(globals(), "o1e_tevatron.families.release")
