"""One table from family name to model class; a checkpoint names its family and loading dispatches on it."""
from __future__ import annotations

from pathlib import Path

from .families.base import FamilyModel, read_family
from .families.debater import DebaterModel
from .modeling import O1EModel

FAMILIES: dict[str, type[FamilyModel]] = {cls.family: cls for cls in (O1EModel, DebaterModel)}


def family_class(name: str) -> type[FamilyModel]:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown retriever family {name!r}: one of {sorted(FAMILIES)}") from None


def load_model(path: str | Path, **kwargs) -> FamilyModel:
    """Load any family's checkpoint (``o1e_config.json`` names it; older checkpoints are O1E)."""
    return family_class(read_family(path)).load(path, **kwargs)
