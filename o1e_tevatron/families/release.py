"""Checkpoints in the layouts their authors released, loaded as o1e's families as they are.

:func:`recognise` tells a model folder's layout by its files:

- o1e's own: ``o1e_config.json`` names the family.
- DEBATER's release (``bigtailwolf/DEBATER-2B`` / ``-4B``, saved by the authors' llm2vec fork): a PEFT LoRA
  adapter over a MiniCPM base, ``llm2vec_config.json`` (``pooling_mode: M_token``, ``max_length``,
  ``doc_max_length``, ``skip_instruction``) and the tokenizer. Loaded as DEBATER with the release's text
  (:meth:`~o1e_tevatron.families.debater.model.DebaterConfig.from_release`).
- The O1 Embedder authors' (FlagEmbedding): a LoRA adapter, or their merged model, whose tokenizer carries
  ``<query>`` ``</query>`` ``<thought>`` ``<emb>``. Loaded as O1E in the authors' layout (o1e's default).
- Any other causal LM folder (``config.json``): a base model, loaded as the family asked for (O1E by default).

A release's own tokens must be single tokens of its tokenizer (its authors write them into text) and be
embedded with the rows it was trained with: the base's (ids inside the base's vocabulary) or the adapter's
(PEFT's ``modules_to_save``, saved embedding layers or trainable tokens). The O1E authors' code adds its
four tokens with random rows, trains only LoRA and keeps those rows at most in a pickle beside the
adapter (``embedding/emb.pth``): without saved rows the adapter is refused (:func:`check_release`), as
o1e could only embed those tokens with other random rows.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core.checkpoint import ADAPTER_WEIGHTS, adapter_embedding_rows
from .base import ADAPTER_CONFIG_NAME, CONFIG_NAME, read_family
from .debater.model import LLM2VEC_CONFIG, DebaterConfig
from ..models import resolve_model_path
from .o1e.template import SPECIAL_TOKENS

MODEL_CONFIG = "config.json"


@dataclass(frozen=True)
class Layout:
    """What a model folder is: a ``description`` (for the log), the ``family`` it fixes (None: any, O1E unless
    asked for another) and the release's own ``tokens``, whose rows :func:`check_release` checks."""

    description: str
    family: Optional[str] = None
    tokens: tuple[str, ...] = ()


def recognise(path: str | Path) -> Layout:
    """The layout of ``path`` from its files (nothing is loaded); a folder in no known layout is a
    one-line error naming what it lacks."""
    folder = Path(path)
    if not folder.is_dir():
        return Layout("a model name (from the hub, or a packaged copy)")
    if (folder / CONFIG_NAME).is_file():
        return Layout("an o1e checkpoint", read_family(folder))
    adapter = (folder / ADAPTER_CONFIG_NAME).is_file()
    if not adapter and not (folder / MODEL_CONFIG).is_file():
        beside = f" beside its {LLM2VEC_CONFIG}" if (folder / LLM2VEC_CONFIG).is_file() else ""
        raise ValueError(f"{folder}: not a model folder: no {ADAPTER_CONFIG_NAME} (an adapter) or {MODEL_CONFIG} "
                         f"(a full model){beside}; o1e checkpoints also carry {CONFIG_NAME}")
    weights = f"an adapter over {base_model(folder)}" if adapter else "a full model"
    if (folder / LLM2VEC_CONFIG).is_file():
        config = DebaterConfig.from_release(folder)
        settings = json.loads((folder / LLM2VEC_CONFIG).read_text())
        return Layout(f"DEBATER's release in llm2vec's layout ({weights}; {LLM2VEC_CONFIG}: "
                      + ", ".join(f"{k} {v}" for k, v in settings.items()) + ")", "debater", tuple(config.step_tokens))
    if set(SPECIAL_TOKENS) <= tokenizer_added_tokens(folder):
        return Layout(f"the O1 Embedder authors' layout ({weights}; its tokenizer carries "
                      f"{' '.join(SPECIAL_TOKENS)})", "o1e", SPECIAL_TOKENS)
    if adapter:
        raise ValueError(f"{folder}: an adapter in no layout o1e knows: no {CONFIG_NAME} (o1e), no {LLM2VEC_CONFIG} "
                         f"(DEBATER's release), no {' '.join(SPECIAL_TOKENS)} in its tokenizer "
                         "(the O1 Embedder authors')")
    return Layout("a causal LM")


def base_model(folder: Path) -> str:
    return json.loads((folder / ADAPTER_CONFIG_NAME).read_text()).get("base_model_name_or_path") or "?"


def tokenizer_added_tokens(folder: Path) -> set[str]:
    """The tokens a saved tokenizer adds to its vocabulary, read from its files (fast and slow tokenizers)."""
    readers = {"tokenizer.json": lambda d: [t["content"] for t in d.get("added_tokens", [])],
               "tokenizer_config.json": lambda d: [t["content"] for t in d.get("added_tokens_decoder", {}).values()],
               "added_tokens.json": list}
    return {token for name, read in readers.items() if (folder / name).is_file()
            for token in read(json.loads((folder / name).read_text(encoding="utf-8")))}


def check_release(folder: Path, layout: Layout, tokenizer, base_model_name_or_path: Optional[str] = None) -> None:
    """Refuse a release that o1e would embed otherwise than its authors: own tokens that its tokenizer
    splits (the authors write them into text), or whose rows neither the base nor the adapter holds."""
    ids = tokenizer.convert_tokens_to_ids(list(layout.tokens))
    split = [t for t, i in zip(layout.tokens, ids) if tokenizer(t, add_special_tokens=False)["input_ids"] != [i]]
    if split:
        raise ValueError(f"{folder}: its tokenizer lacks or splits {' '.join(split)}, which this layout needs as "
                         "single tokens (its authors write them into the text): use the tokenizer saved with the model")
    adapter = (folder / ADAPTER_CONFIG_NAME).is_file()
    if adapter and not (folder / ADAPTER_WEIGHTS).is_file():
        raise ValueError(f"{folder}: no {ADAPTER_WEIGHTS} beside {ADAPTER_CONFIG_NAME} (o1e reads adapters in "
                         "safetensors, never a pickled adapter_model.bin)")
    base = (base_model_name_or_path or base_model(folder)) if adapter else str(folder)
    matrix, rows = adapter_embedding_rows(folder) if adapter else (0, set())
    base_rows = vocabulary_rows(base, folder)
    missing = [t for t, i in zip(layout.tokens, ids) if i >= max(base_rows, matrix) and i not in rows]
    if missing:
        pickled = " (embedding/emb.pth holds them as a pickle, which o1e does not load)" \
            if (folder / "embedding" / "emb.pth").is_file() else ""
        raise ValueError(f"{folder}: no trained embedding rows for {' '.join(missing)}: the tokenizer adds them beyond "
                         f"the {base_rows} rows of {base} and the adapter saves none{pickled}, so any load would embed "
                         "them with other random rows. Save the adapter with modules_to_save=['embed_tokens'] "
                         "(or the merged model) and load that")


def vocabulary_rows(base: str, folder: Path) -> int:
    """The embedding rows of ``base`` as its config.json says (a local folder, or the hub's cached file)."""
    from transformers.utils import cached_file

    try:
        config = json.loads(Path(cached_file(resolve_model_path(base), MODEL_CONFIG)).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{folder}: its base {base} is not reachable here ({type(e).__name__}): pass where the "
                         "base lives now (base_model_name_or_path)") from None
    return int(config.get("vocab_size") or config.get("text_config", {}).get("vocab_size") or 0)
