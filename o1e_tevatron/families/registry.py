"""One table from family name to model class; a checkpoint names its family and loading dispatches on it."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ..core.checkpoint import warn_remote_code
from .base import DEFAULT_FAMILY, FamilyModel
from .debater.model import DebaterModel
from .o1e.model import O1EModel
from .release import check_release, recognise

logger = logging.getLogger(__name__)

FAMILIES: dict[str, type[FamilyModel]] = {cls.family: cls for cls in (O1EModel, DebaterModel)}


def family_class(name: str) -> type[FamilyModel]:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown retriever family {name!r}: one of {sorted(FAMILIES)}") from None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def load_model(path: str | Path, family: type[FamilyModel] | None = None, **load_kwargs) -> FamilyModel:
    """Load a checkpoint of ``family``, or of the family its layout fixes (``o1e_config.json``; a release
    in its authors' layout, :mod:`o1e_tevatron.families.release`; any other causal LM is O1E), after checking the
    folders it reads (the checkpoint, and an adapter's local base): a missing tokenizer, a torn
    safetensors file or a release o1e would embed otherwise than its authors is a one-line error naming
    the file and what to do, not a deep traceback. One log line says what was recognised."""
    from safetensors import SafetensorError, safe_open
    from transformers import AutoTokenizer

    trust_remote_code = load_kwargs.get("trust_remote_code", False)
    if trust_remote_code:
        warn_remote_code(path)
    layout = recognise(path)
    if family is not None and layout.family not in (None, family.family):
        raise ValueError(f"{path}: {layout.description}, a {layout.family} model: load it as {layout.family}, "
                         f"not {family.family}")
    family = family or family_class(layout.family or DEFAULT_FAMILY)
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
    if layout.tokens:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        check_release(Path(path), layout, tokenizer, load_kwargs.get("base_model_name_or_path"))
    logger.info("%s: %s; loading it as %s", path, layout.description, family.family)
    return family.load(path, **load_kwargs)
