"""One table from retriever family to its Pyserini query and document encoder classes, and their
registration into Pyserini's class maps, so ``python -m pyserini.search.faiss`` / ``pyserini.encode``
construct them.

Pyserini picks the first key of its maps that is a substring of the lower-cased ``--encoder``: each
family is registered under its own name, and the ``--encoder`` path itself under the family its
checkpoint fixes (``o1e_config.json``, or a release's layout: ``o1e_tevatron.families.release``) or
``--encoder-class FAMILY`` asks for, so the choice does not depend on the folder's name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

from o1e_tevatron.families.release import recognise

from .debater import DebaterDocumentEncoder, DebaterQueryEncoder
from .o1e import O1EDocumentEncoder, O1EQueryEncoder

ENCODERS: dict[str, tuple[type, type]] = {
    "o1e": (O1EQueryEncoder, O1EDocumentEncoder),
    "debater": (DebaterQueryEncoder, DebaterDocumentEncoder),
}


def checkpoint_family(path: Optional[str]) -> Optional[str]:
    """The family a checkpoint folder fixes (o1e's own or a release's layout); None for anything else,
    which Pyserini's own encoders may take."""
    if not path or not Path(path).is_dir():
        return None
    try:
        return recognise(path).family
    except ValueError:
        return None


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


def register(keys: Mapping[str, str], query_encoders: Optional[Mapping[str, Callable]] = None,
             document_encoders: Optional[Mapping[str, Callable]] = None) -> None:
    """Put o1e's families first in Pyserini's class maps, under each of ``keys`` ({key: family});
    ``query_encoders`` / ``document_encoders`` replace a family's classes (e.g. by ones bound to CLI options)."""
    import pyserini.encode as pyserini_encode

    for class_map, side, replaced in ((pyserini_encode.query_encoder_class_map, 0, query_encoders or {}),
                                      (pyserini_encode.document_encoder_class_map, 1, document_encoders or {})):
        entries = {key.lower(): replaced.get(family) or ENCODERS[family][side] for key, family in keys.items()}
        entries.update((k, v) for k, v in class_map.items() if k not in entries)
        class_map.clear()
        class_map.update(entries)  # in place: Pyserini's modules hold this very dict
