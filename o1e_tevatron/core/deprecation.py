"""One-release aliases for what the layout of issue 23 moved: an old import keeps working, and a
``DeprecationWarning`` names the new place. Remove the aliases (the modules that call these, and the
``__getattr__`` hooks) in the release after."""
from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable, Mapping


def _warn(old: str, new: str) -> None:
    # stacklevel 3: the code that imported the old name (importlib's own frames are skipped)
    warnings.warn(f"{old} moved to {new}; the old name goes in the next release", DeprecationWarning, stacklevel=3)


def alias_module(namespace: dict, new: str, also: Mapping[str, str] = {}) -> None:
    """Make the module whose globals are ``namespace`` an alias of the module ``new``: warn where it is
    imported, then hold every name of ``new``, and the names of ``also`` (name -> the module that now
    holds it: names that left the old module for elsewhere)."""
    _warn(namespace["__name__"], new)
    module = importlib.import_module(new)
    namespace.update({name: value for name, value in vars(module).items() if not name.startswith("__")})
    namespace.update({name: getattr(importlib.import_module(where), name) for name, where in also.items()})


def moved_names(old: str, moves: Mapping[str, str] | str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for names that left the module ``old``: ``moves`` maps a name to
    ``"module"`` or ``"module:new_name"``, or is one module that now holds every such name."""

    def __getattr__(name: str) -> Any:
        where = moves if isinstance(moves, str) else moves.get(name)
        if where and not name.startswith("__"):
            module_name, _, new_name = where.partition(":")
            module = importlib.import_module(module_name)
            if hasattr(module, new_name or name):
                _warn(f"{old}.{name}", f"{module_name}.{new_name or name}")
                return getattr(module, new_name or name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
