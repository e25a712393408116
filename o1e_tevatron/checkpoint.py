"""One table from family name to model class; a checkpoint names its family and loading dispatches on it."""
from __future__ import annotations

import json
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


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def load_model(path: str | Path, family: type[FamilyModel] | None = None, **load_kwargs) -> FamilyModel:
    """Load a checkpoint of ``family``, or of the family it names (``o1e_config.json``; older checkpoints
    are O1E), after checking the folders it reads (the checkpoint, and an adapter's local base): a
    missing tokenizer or a torn safetensors file is a one-line error naming the file and what to do,
    not a deep traceback."""
    from safetensors import SafetensorError, safe_open

    folders = [Path(path)] if Path(path).is_dir() else []
    adapter_config = Path(path) / "adapter_config.json"
    if adapter_config.is_file():
        base = load_kwargs.get("base_model_name_or_path") or json.loads(adapter_config.read_text()).get(
            "base_model_name_or_path")
        folders += [Path(base)] if base and Path(base).is_dir() else []
    if folders and not any((folders[0] / name).is_file() for name in TOKENIZER_FILES):
        raise ValueError(f"{folders[0]}: no tokenizer (none of {', '.join(TOKENIZER_FILES)}): save the tokenizer "
                         "the model was trained with into this folder")
    for weights in (w for folder in folders for w in sorted(folder.glob("*.safetensors"))):
        try:
            with safe_open(str(weights), "pt"):
                pass
        except SafetensorError as e:
            raise ValueError(f"{weights}: not a complete safetensors file ({e}): copy or save the model again") from None
    return (family or family_class(read_family(path))).load(path, **load_kwargs)
