"""What makes a checkpoint safe to load and to write, whatever its family: the base model it was
trained on (a cheap fingerprint, checked when an adapter is loaded or a run resumed), and saves that
never leave torn files (written under a hidden name, moved into place when complete)."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch

from .errors import CheckpointError, is_disk_full

logger = logging.getLogger(__name__)


class BaseModelMismatchError(CheckpointError):
    """An adapter or a checkpoint over another base model than the one it was trained on."""


WEIGHT_BUCKETS = 16
WEIGHT_TOLERANCE = 1e-2  # of a bucket's norm: far above float16/bf16 rounding, far below other weights


def base_fingerprint(lm, name_or_path: str) -> dict:
    """What identifies a base model cheaply: its architecture (type, parameter names and shapes, hashed)
    and a weight digest, the sums of ~1k values per tensor in 16 buckets, with each bucket's norm, so
    that the same weights loaded in float32, bf16 or float16 agree and other weights do not."""
    architecture = hashlib.sha256(lm.config.model_type.encode())
    sums, squares = [0.0] * WEIGHT_BUCKETS, [0.0] * WEIGHT_BUCKETS
    with torch.no_grad():
        for i, (name, param) in enumerate(lm.named_parameters()):
            architecture.update(f"{name}:{tuple(param.shape)};".encode())
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 1024)].to("cpu", torch.float64)
            sums[i % WEIGHT_BUCKETS] += sample.sum().item()
            squares[i % WEIGHT_BUCKETS] += sample.square().sum().item()
    return {"name_or_path": str(name_or_path), "architecture": architecture.hexdigest()[:16],
            "weight_sums": [float(f"{x:.6g}") for x in sums],
            "weight_norms": [float(f"{x ** 0.5:.6g}") for x in squares]}


def _same_weights(a: dict, b: dict) -> bool:
    return all(abs(x - y) <= WEIGHT_TOLERANCE * max(n, 1e-12)
               for x, y, n in zip(a["weight_sums"], b["weight_sums"], a["weight_norms"]))


def check_same_base(recorded: Optional[dict], actual: dict, what: str) -> None:
    """Refuse weights trained on one base to be used over another; silent only when they match."""
    if recorded is None:
        logger.warning("%s does not record its base model (saved by an older o1e): cannot check that %s is it",
                       what, actual["name_or_path"])
        return
    if recorded["architecture"] != actual["architecture"]:
        difference = "another architecture (other parameter names or shapes)"
    elif not _same_weights(recorded, actual):
        difference = "the same architecture but other weights"
    else:
        return
    raise BaseModelMismatchError(
        f"{what} was trained on the base model {recorded['name_or_path']}, but the base given is "
        f"{actual['name_or_path']}: {difference}. Use the base it was trained on.")


def warn_remote_code(where) -> None:
    """``trust_remote_code`` is an opt-in: say, every time, that it runs the Python files of a model folder."""
    logger.warning("trust_remote_code is on: running the Python code that %s ships (modeling and tokenizer files); "
                   "use it only for models you trust", where)


ADAPTER_WEIGHTS = "adapter_model.safetensors"
# a whole input-embedding matrix in an adapter: PEFT's modules_to_save, saved embedding layers, a trainable tokens' base
EMBEDDING_MATRIX = re.compile(r"embed_tokens\.(?:modules_to_save\.|token_adapter\.base_layer\.)?weight$")


def adapter_embedding_rows(folder: str | Path) -> tuple[int, set[int]]:
    """The input-embedding rows a PEFT adapter carries, read from its safetensors header (no weights
    loaded): the row count of a whole matrix it saved (0: none), and the token ids of single rows it
    trains (PEFT's trainable tokens, as o1e saves its families' tokens)."""
    from safetensors import safe_open

    weights = Path(folder) / ADAPTER_WEIGHTS
    if not weights.is_file():
        return 0, set()
    matrix, has_tokens = 0, False
    with safe_open(str(weights), "pt") as f:
        for key in f.keys():
            if EMBEDDING_MATRIX.search(key):
                matrix = max(matrix, f.get_slice(key).get_shape()[0])
            has_tokens = has_tokens or "trainable_tokens_delta" in key
    indices = json.loads((Path(folder) / "adapter_config.json").read_text()).get("trainable_token_indices") or []
    if isinstance(indices, dict):  # per layer: {"embed_tokens": [ids]}
        indices = [i for ids in indices.values() for i in ids]
    return matrix, set(indices) if has_tokens else set()


@contextmanager
def peft_without_deprecation_warnings():
    """PEFT (0.x) still reads transformers' deprecated ``is_gradient_checkpointing``: not ours to warn about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


@contextmanager
def staging_folder(final: Path, staging: Optional[Path] = None):
    """A fresh hidden sibling of ``final`` to write into (``staging``, or a new unique one), so that a
    failed save (a full disk, a crash) never leaves torn files under ``final``: the caller moves the
    finished files in. On error the partial files are removed and a full disk is reported as such."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if staging is None:
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    else:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    try:
        yield staging
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if is_disk_full(e):
            raise OSError(errno.ENOSPC, f"no space left on device while saving {final}: nothing was written "
                                        f"there (the partial files were removed); free some space and save again") from e
        raise


def move_into(staging: Path, final: Path) -> None:
    """Move every file of ``staging`` into ``final`` (replacing those of the same name), then drop ``staging``."""
    final.mkdir(parents=True, exist_ok=True)
    for entry in staging.iterdir():
        target = final / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)
    staging.rmdir()
