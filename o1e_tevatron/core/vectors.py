"""Encoded vectors on disk in a format that cannot run code, and the record of what made them.

Tevatron's shards and Pyserini's ``embedding.pkl`` are pickles by convention, and unpickling a file
runs whatever code it carries. o1e writes and reads ``.npz`` (vectors plus a string array of ids,
loaded with ``allow_pickle=False``); it reads a pickle only when the caller opts in, with a warning.

Each output gets a small JSON record beside it (:func:`record_path`): the fingerprint of what made
it (model, input, settings), a digest of its ids, and its size and dimension. Resuming compares the
record, never the file's contents, so nothing is unpickled to decide that a shard is done.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".pkl", ".pickle")
RECORD_SUFFIX = ".o1e.json"
RECORD_IN_FOLDER = "o1e-encoded.json"
PICKLE_WARNING = ("%s is a pickle: loading it runs any code it carries; only load pickles you made yourself "
                  "(o1e writes .npz by default)")


class UnsafeFileError(ValueError):
    """A pickle was offered without the opt-in that says the caller trusts it."""


def is_pickle(path: str | Path) -> bool:
    return Path(path).suffix in PICKLE_SUFFIXES


def write_vectors(path: str | Path, vectors: np.ndarray, ids: Sequence[str], dtype: str = "float32") -> None:
    """``.npz`` (safe, the default; vectors stored in ``dtype``, float32 or float16) or a Tevatron
    ``(reps, lookup)`` pickle for ``.pkl``; written under a temporary name and renamed, so a killed run
    never leaves a torn file under the final name."""
    path = Path(path)
    if len(vectors) != len(ids):
        raise ValueError(f"{path}: {len(vectors)} vectors but {len(ids)} ids")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        if is_pickle(path):
            import pickle
            pickle.dump((vectors, list(ids)), f, protocol=4)
        else:
            np.savez(f, vectors=np.asarray(vectors, dtype=np.dtype(dtype)), ids=np.array(list(ids), dtype=str))
    os.replace(tmp, path)


def read_vectors(path: str | Path, allow_pickle: bool = False) -> tuple[np.ndarray, list[str]]:
    """(vectors (n, d) float32, ids) of an ``.npz`` written by :func:`write_vectors`; a pickle only with
    ``allow_pickle`` (warned about). Errors name the file and what to do."""
    path = Path(path)
    if is_pickle(path):
        if not allow_pickle:
            raise UnsafeFileError(f"{path} is a pickle, and loading a pickle runs any code it carries: write "
                                  "shards as .npz (the default), or pass --allow_pickle / --allow-pickle "
                                  "if you made this file yourself")
        import pickle
        logger.warning(PICKLE_WARNING, path)
        with open(path, "rb") as f:
            vectors, ids = pickle.load(f)  # opt-in: the caller trusts this file
    else:
        try:
            with np.load(path, allow_pickle=False) as data:
                vectors, ids = data["vectors"], data["ids"]
        except (ValueError, KeyError, OSError, EOFError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise ValueError(f"{path}: not an o1e vectors file (.npz with 'vectors' and 'ids'): {e}; "
                             "encode it again") from e
    vectors = np.asarray(vectors, dtype=np.float32)
    ids = [str(i) for i in ids]
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"{path}: {len(vectors)} vectors of shape {vectors.shape[1:]} for {len(ids)} ids; "
                         "encode it again")
    return vectors, ids


# --- the record beside an output --------------------------------------------------------------
def record_path(output: str | Path) -> Path:
    output = Path(output)
    return output / RECORD_IN_FOLDER if output.is_dir() else output.with_name(output.name + RECORD_SUFFIX)


def ids_digest(ids: Sequence[str]) -> str:
    return hashlib.blake2b("\n".join(ids).encode(), digest_size=16).hexdigest() + f":{len(ids)}"


def write_record(output: str | Path, fingerprint: str, ids: Sequence[str], dimension: int, **parts) -> None:
    """``parts``: fingerprints of single ingredients (e.g. ``model``) that readers check on their own."""
    record = {"fingerprint": fingerprint, "ids": ids_digest(ids), "dimension": int(dimension),
              "bytes": _size(Path(output)), **parts}
    path = record_path(output)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def remove_record(output: str | Path) -> None:
    """Before an output is rewritten: a killed rewrite must not leave the old record vouching for it."""
    output = Path(output)
    if output.is_dir():
        (output / RECORD_IN_FOLDER).unlink(missing_ok=True)
    output.with_name(output.name + RECORD_SUFFIX).unlink(missing_ok=True)


def read_record(output: str | Path) -> Optional[dict]:
    try:
        return json.loads(record_path(output).read_text())
    except (OSError, ValueError):
        return None


def recorded_dimension(output: str | Path, fingerprint: str, ids: Sequence[str]) -> Optional[int]:
    """The dimension of an output made from exactly this fingerprint and these ids and not changed
    since; None (with the reason logged) when it must be written again."""
    output = Path(output)
    if not output.exists():
        return None
    record = read_record(output)
    if record is None:
        reason = "it has no o1e record (written by another tool, or interrupted)"
    elif record.get("fingerprint") != fingerprint:
        reason = "it was made from another model, input or settings"
    elif record.get("ids") != ids_digest(ids):
        reason = "it lists other ids than this shard"
    elif record.get("bytes") != _size(output):
        reason = "it changed after it was written"
    else:
        return int(record["dimension"])
    logger.warning("%s is not this shard's output (%s): encoding again", output, reason)
    return None


def _size(output: Path) -> int:
    if output.is_dir():
        return sum(p.stat().st_size for p in output.iterdir() if p.is_file() and p.name != RECORD_IN_FOLDER
                   and not p.name.startswith(RECORD_IN_FOLDER))
    return output.stat().st_size


# --- how vectors are stored in a faiss index ----------------------------------------------------
VECTOR_DTYPES = ("auto", "float16", "float32")
LARGE_CORPUS = 1_000_000  # vectors; from here on ``auto`` stores float16 (MS MARCO: 8.8M)


def storage_dtype(requested: str, num_vectors: int) -> str:
    """``auto``: float16 for a large corpus (half the memory, rankings within the measured tolerance of
    float32, see BENCHMARKS.md), float32 below; any other choice is kept."""
    if requested not in VECTOR_DTYPES:
        raise ValueError(f"vector dtype must be one of {VECTOR_DTYPES}, got {requested!r}")
    if requested == "auto":
        return "float16" if num_vectors >= LARGE_CORPUS else "float32"
    return requested


def memory_plan(num_vectors: int, dimension: int, chosen: str) -> str:
    """One line with what the index needs in float32, float16 and 64-byte product quantization (PQ64x8)."""
    gib = lambda n_bytes: f"{n_bytes / 2**30:.2f} GiB"  # noqa: E731
    sizes = {"float32": 4 * dimension, "float16": 2 * dimension, "PQ64x8": 64}
    parts = ", ".join(f"{name} {gib(num_vectors * size)}" for name, size in sizes.items())
    return f"{num_vectors} x {dimension}-d vectors: {parts}; storing {chosen}"


def flat_index(dimension: int, dtype: str = "float32"):
    """An exact inner-product index: IndexFlatIP (float32) or a float16 scalar quantizer (exact
    inner products with the float16-rounded vectors). Both are plain faiss indexes Pyserini reads."""
    import faiss

    if dtype == "float16":
        return faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    if dtype == "float32":
        return faiss.IndexFlatIP(dimension)
    raise ValueError(f"index dtype must be float16 or float32, got {dtype!r}")
