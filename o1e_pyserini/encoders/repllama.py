"""RepLLaMA (Ma et al., 2023) for Pyserini: the retriever of the paper's separate-generator baseline.

Pyserini 1.6 has no RepLLaMA encoder. RepLLaMA embeds ``query: q</s>`` and ``passage: title text</s>``
with a LoRA-tuned Llama and takes the last token's (the eos's) hidden state, L2-normalised; the
adapter (e.g. ``castorini/repllama-v1-7b-lora-passage``) names its base model. Sequences are
truncated to ``max_length`` with the eos kept, and left-padded with positions counted over real tokens,
so a batch embeds each text as it would alone.
"""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pyserini.encode import DocumentEncoder, QueryEncoder
from transformers import AutoModel, AutoTokenizer

from o1e_tevatron.core.tensors import pad, position_ids_from_mask
from o1e_tevatron.models import resolve_model_path

logger = logging.getLogger(__name__)


class RepLlama:
    """The model both encoders share: a Llama (adapter merged when given one) read at the last token."""

    def __init__(self, model_name_or_path: str, device: str = "cpu", dtype: str = "float32",
                 base_model_name_or_path: Optional[str] = None, tokenizer_name: Optional[str] = None,
                 batch_size: int = 16, trust_remote_code: bool = False):
        from peft import PeftConfig, PeftModel

        from o1e_tevatron.core.checkpoint import warn_remote_code

        try:
            adapter = PeftConfig.from_pretrained(model_name_or_path)
        except (ValueError, OSError):
            adapter = None
        base = resolve_model_path(base_model_name_or_path
                                  or (adapter.base_model_name_or_path if adapter else model_name_or_path))
        if trust_remote_code:
            warn_remote_code(base)
        model = AutoModel.from_pretrained(base, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code)
        if adapter is not None:
            model = PeftModel.from_pretrained(model, model_name_or_path).merge_and_unload()
        self.model = model.to(device).eval()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_name or model_name_or_path,
                                                           trust_remote_code=trust_remote_code)
        except (ValueError, OSError):  # an adapter folder without tokenizer files: the base model's
            self.tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
        tok = self.tokenizer
        if tok.eos_token_id is None:
            raise ValueError(f"{model_name_or_path}: RepLLaMA pools at the eos token, but the tokenizer has none")
        self.pad_id = next(i for i in (tok.pad_token_id, tok.unk_token_id, tok.eos_token_id) if i is not None)
        self.device, self.batch_size = device, batch_size

    @property
    def dimension(self) -> int:
        return self.model.config.hidden_size

    def token_ids(self, text: str, max_length: int) -> list[int]:
        """``[bos] text </s>``, the text cut so that the eos always fits."""
        ids = self.tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_length - 1)["input_ids"]
        return ids + [self.tokenizer.eos_token_id]

    def embed(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        sequences = [self.token_ids(text, max_length) for text in texts]
        out = np.empty((len(sequences), self.dimension), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(sequences), self.batch_size):
                ids, mask = pad(sequences[start:start + self.batch_size], self.pad_id, "left")
                ids, mask = ids.to(self.device), mask.to(self.device)
                hidden = self.model(input_ids=ids, attention_mask=mask,
                                    position_ids=position_ids_from_mask(mask)).last_hidden_state
                out[start:start + len(ids)] = F.normalize(hidden[:, -1].float(), dim=-1).cpu().numpy()
        return out


class RepLlamaQueryEncoder(QueryEncoder):
    def __init__(self, encoder_dir: str, device: str = "cpu", max_length: int = 512, prefix: str = "query: ",
                 **model_options):
        super().__init__()
        self.repllama = RepLlama(encoder_dir, device=device, **model_options)
        self.has_model = True
        self.max_length, self.prefix = max_length, prefix

    def encode(self, query: str, **kwargs) -> np.ndarray:
        return self.encode_batch([query])[0]

    def encode_batch(self, queries: Sequence[str], **kwargs) -> np.ndarray:
        return self.repllama.embed([self.prefix + q for q in queries], self.max_length)


class RepLlamaDocumentEncoder(DocumentEncoder):
    def __init__(self, model_name: str, device: str = "cpu", prefix: str = "passage: ", **model_options):
        self.repllama = RepLlama(model_name, device=device, **model_options)
        self.prefix = prefix

    def encode(self, texts: Sequence[str], titles: Optional[Sequence[str]] = None, max_length: int = 512,
               **kwargs) -> np.ndarray:
        if titles is not None:
            texts = [f"{title} {text}" if title else text for title, text in zip(titles, texts)]
        return self.repllama.embed([self.prefix + t for t in texts], max_length)
