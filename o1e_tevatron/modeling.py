"""Deprecated (one release): moved to :mod:`o1e_tevatron.families.o1e.model`."""
from o1e_tevatron.core.deprecation import alias_module

alias_module(globals(), "o1e_tevatron.families.o1e.model", {"position_ids_from_mask": "o1e_tevatron.core.tensors",
                                                            "BaseModelMismatchError": "o1e_tevatron.core.checkpoint"})
