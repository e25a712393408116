"""One table from retriever family to its Pyserini query and document encoder classes, and their
registration into Pyserini's class maps, so ``python -m pyserini.search.faiss`` / ``pyserini.encode``
construct them.

Pyserini picks the first key of its maps that is a substring of the lower-cased ``--encoder``: each
family is registered under its own name, and the ``--encoder`` path itself under the family its
checkpoint names (``o1e_config.json``) or ``--encoder-class FAMILY`` asks for, so the choice does
not depend on the folder's name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from o1e_tevatron.families.base import CONFIG_NAME, read_family

from .debater import DebaterDocumentEncoder, DebaterQueryEncoder
from .encoder import O1EDocumentEncoder, O1EQueryEncoder

ENCODERS: dict[str, tuple[type, type]] = {
    "o1e": (O1EQueryEncoder, O1EDocumentEncoder),
    "debater": (DebaterQueryEncoder, DebaterDocumentEncoder),
}


def checkpoint_family(path: Optional[str]) -> Optional[str]:
    """The family an o1e checkpoint folder names; None for anything else."""
    return read_family(path) if path and (Path(path) / CONFIG_NAME).is_file() else None


def registry_keys(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Pyserini's argv without ``--encoder-class FAMILY`` (not among Pyserini's choices), and
    ``{key: family}``: every family under its name, plus the ``--encoder`` path under its family."""
    out, forced, encoder = [], None, None
    args = iter(argv)
    for arg in args:
        if arg.startswith("--encoder-class=") and arg.split("=", 1)[1] in ENCODERS:
            forced = arg.split("=", 1)[1]
            continue
        if arg == "--encoder-class":
            value = next(args, None)
            if value in ENCODERS:
                forced = value
                continue
            out.append(arg)
            arg = value
        elif arg == "--encoder":
            out.append(arg)
            arg = encoder = next(args, None)
        elif arg.startswith("--encoder="):
            encoder = arg.split("=", 1)[1]
        if arg is not None:
            out.append(arg)
    keys = {family: family for family in ENCODERS}
    family = forced or checkpoint_family(encoder)
    if encoder and family:
        keys[encoder] = family
    return out, keys


def register(keys: Mapping[str, str], query_encoders: Optional[Mapping[str, Callable]] = None) -> None:
    """Put o1e's families first in Pyserini's class maps, under each of ``keys`` ({key: family});
    ``query_encoders`` replaces a family's query encoder class (e.g. by one bound to CLI options)."""
    import pyserini.encode as pyserini_encode

    query_encoders = query_encoders or {}
    for class_map, side in ((pyserini_encode.query_encoder_class_map, 0),
                            (pyserini_encode.document_encoder_class_map, 1)):
        entries = {key.lower(): (query_encoders.get(family) if side == 0 else None) or ENCODERS[family][side]
                   for key, family in keys.items()}
        entries.update((k, v) for k, v in class_map.items() if k not in entries)
        class_map.clear()
        class_map.update(entries)  # in place: Pyserini's modules hold this very dict
