"""What the families' Pyserini encoders share: the input error, loading a checkpoint of the family,
Pyserini's options that a checkpoint fixes, and the passage side (text -> the family's template ->
vectors)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar, Optional, Sequence

import numpy as np
from pyserini.encode import DocumentEncoder

from o1e_tevatron.families.registry import load_model
from o1e_tevatron.core.errors import CheckpointError, InputError
from o1e_tevatron.core.encoding import encode_sequences
from o1e_tevatron.core.rows import passage_text

logger = logging.getLogger(__name__)


#: The search side's name for o1e's one input error (``core.errors.InputError``)
O1EInputError = InputError


def load_family_model(family, path: str, device: str, dtype: str, fp16: bool,
                      base_model_name_or_path: Optional[str], trust_remote_code: bool = False):
    """A checkpoint of ``family`` (a FamilyModel class) in eval mode; a bad checkpoint is one line.
    ``trust_remote_code`` (opt-in) runs the model folder's code, as MiniCPM (DEBATER's release) needs.

    An adapter is merged into its base for inference, in float32 on the CPU, and only then are the
    weights cast to ``dtype`` and moved to ``device``: unmerged LoRA on every linear layer encoded
    SciFact 3.4x slower in bfloat16 (SmolLM2, 2 CPU cores), and merging in bfloat16 moved the vectors
    (cosine 0.995 to float32's). A plain (merged or full) checkpoint loads straight in ``dtype``."""
    import torch

    from o1e_tevatron.families.base import ADAPTER_CONFIG_NAME
    from o1e_tevatron.models import resolve_model_path

    dtype = "float16" if fp16 else dtype
    adapter = (Path(resolve_model_path(path)) / ADAPTER_CONFIG_NAME).is_file()
    try:
        model = load_model(path, family, dtype="float32" if adapter else dtype, device=None if adapter else device,
                           base_model_name_or_path=base_model_name_or_path, trust_remote_code=trust_remote_code)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    if adapter:
        model.lm = model.lm.merge_and_unload()
        with torch.no_grad():
            for parameter in model.parameters():  # buffers (rotary frequencies) stay as loaded, as from_pretrained keeps them
                parameter.data = parameter.data.to(getattr(torch, dtype))
        model.to(device)
    return model.eval()


def report_ignored(cls_name: str, options: dict) -> None:
    """Pyserini passes pooling / l2_norm / prefix / max_length to some encoders by name matching;
    the o1e checkpoint's own config fixes those, so they are dropped (visibly)."""
    if options:
        logger.info("%s ignores Pyserini options %s: the checkpoint's o1e_config.json fixes them",
                    cls_name, sorted(options))


class FamilyDocumentEncoder(DocumentEncoder):
    """Passages laid out by the checkpoint's template (``[bos] title text`` + the family's suffix,
    truncated as the checkpoint says) and embedded in length-sorted batches."""

    family: ClassVar[type]  # the FamilyModel class

    def __init__(self, model_name: str, device: str = "cpu", dtype: str = "float32", fp16: bool = False,
                 batch_size: int = 32, base_model_name_or_path: Optional[str] = None, trust_remote_code: bool = False,
                 **pyserini_options):
        report_ignored(type(self).__name__, pyserini_options)
        self.model = load_family_model(self.family, model_name, device, dtype, fp16, base_model_name_or_path,
                                       trust_remote_code)
        self.batch_size = batch_size

    @property
    def dimension(self) -> int:
        return self.model.causal_lm.config.hidden_size

    def passage_vectors(self, texts: Sequence[str], titles: Optional[Sequence[str]] = None) -> np.ndarray:
        """(n, d) or, for DEBATER, (n, M, d) float32. Pyserini's ``fp16`` / ``max_length`` / ``add_sep``
        do not apply (the checkpoint fixes them)."""
        texts = list(texts)
        if titles is not None:
            texts = [passage_text(title, text) for title, text in zip(titles, texts)]
        t = self.model.template
        return encode_sequences(self.model, [t.passage(p) for p in t.tokenize_batch(texts)], self.batch_size)
