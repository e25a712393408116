"""Tiny checkpoints saved as the released models are (never downloaded), and the releases' own encoders
re-implemented literally from their code, for tests/test_release.py and the CLI tests.

- :func:`minicpm_like_base`: a tiny Llama whose tokenizer, like MiniCPM's, adds bos and holds
  ``<reserved_12>`` .. ``<reserved_19>`` as single tokens of the base vocabulary; with ``padded_rows``,
  embedding rows beyond the tokenizer, as Qwen2.5 (the O1 Embedder authors' base) has.
- :func:`save_debater_release`: DEBATER's llm2vec save: PEFT LoRA adapter (save_pretrained), tokenizer,
  ``llm2vec_config.json``.
- :func:`save_o1e_authors_adapter`: the O1 Embedder authors' save: the base resized for ``<query>``
  ``</query>`` ``<thought>`` ``<emb>`` (random new rows), LoRA, the tokenizer; the new rows saved as
  ``modules_to_save``, as trainable tokens, or not at all (what their code does).
"""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tokenizers.processors import TemplateProcessing
from transformers import AutoModelForCausalLM, AutoTokenizer

from o1e_tevatron.core.checkpoint import peft_without_deprecation_warnings
from o1e_tevatron.families.base import LORA_TARGET_MODULES
from o1e_tevatron.families.o1e.template import SPECIAL_TOKENS
from o1e_tevatron.tiny import demo_texts, tiny_config, train_tokenizer

STEP_TOKENS = [f"<reserved_{12 + k}>" for k in range(8)]
RELEASE_PROMPT = "Use eight words to represent the above text in multiple aspects: "
INSTRUCTION = "Given a scientific claim, retrieve documents that support or refute the claim:"
QUERIES = ["dna repair in yeast cells", "vaccines trigger an immune response", "stem cells"]
PASSAGES = [" ".join(text.split()[:n]) for n, text in zip((6, 20, 12, 24, 3), demo_texts())]  # < doc_max_length


def minicpm_like_base(out: Path, padded_rows: int = 0) -> Path:
    tokenizer = train_tokenizer(demo_texts(), vocab_size=600)
    tokenizer.add_tokens(STEP_TOKENS)
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)])
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(tiny_config("llama", len(tokenizer) + padded_rows)).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _lora(lm, seed: int, **config):
    """LoRA on every projection, with B drawn at random (as after training) so the adapter changes the vectors."""
    from peft import LoraConfig, get_peft_model

    with peft_without_deprecation_warnings():
        model = get_peft_model(lm, LoraConfig(target_modules=list(LORA_TARGET_MODULES), **config))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(0.05 * torch.randn(param.shape, generator=generator))
    return model


def save_debater_release(base: Path, out: Path, doc_max_length: int = 96, max_length: int = 160) -> Path:
    model = _lora(AutoModelForCausalLM.from_pretrained(base), seed=1, r=16, lora_alpha=32, lora_dropout=0.05)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    (out / "llm2vec_config.json").write_text(json.dumps({"pooling_mode": "M_token", "max_length": max_length,
                                                         "doc_max_length": doc_max_length, "skip_instruction": True}))
    return out


def save_o1e_authors_adapter(base: Path, out: Path, rows: str):
    """The authors' adapter; returns the trained model (in memory) for reference vectors."""
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
    lm = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(2)
    lm.resize_token_embeddings(len(tokenizer))  # new rows drawn at random (or fewer rows: Qwen's), as in their code
    extra = {"modules_to_save": ["embed_tokens", "lm_head"]} if rows == "modules_to_save" else \
        {"trainable_token_indices": tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))} \
        if rows == "trainable_tokens" else {}
    model = _lora(lm, seed=3, r=8, lora_alpha=16, **extra)
    model.save_pretrained(out, save_embedding_layers=False)
    tokenizer.save_pretrained(out)
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def release_base(tmp_path_factory):
    return minicpm_like_base(tmp_path_factory.mktemp("minicpm-like"))


@pytest.fixture(scope="module")
def debater_release(release_base, tmp_path_factory):
    return save_debater_release(release_base, tmp_path_factory.mktemp("DEBATER-tiny"))


@torch.no_grad()
def last_positions_encode(lm, tokenizer, texts, positions: int, max_length: int = 512) -> torch.Tensor:
    """What both releases do at inference: tokenize the text (bos added by the tokenizer), left-pad with
    eos, run the decoder, take the last ``positions`` hidden states, L2-normalise: (n, positions, d)."""
    tokenizer.padding_side = "left"
    tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    hidden = lm.get_decoder()(**batch).last_hidden_state
    return F.normalize(hidden[:, -positions:].float(), dim=-1)


def debater_release_encode(adapter: Path, texts, instruction: str = "", query: bool = True) -> torch.Tensor:
    """DEBATER's release: base + adapter merged (llm2vec's load), ``{instruction} {query}</s>`` pooled at the
    last token; ``{passage} Use eight words ...: <reserved_12>..<reserved_19>`` at the 8 step tokens."""
    from peft import PeftModel

    settings = json.loads((adapter / "llm2vec_config.json").read_text())
    base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    with peft_without_deprecation_warnings():
        lm = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    if query:
        strings = [f"{instruction} {q}</s>" if instruction else f"{q}</s>" for q in texts]
    else:
        strings = [f"{p} {RELEASE_PROMPT}" + "".join(STEP_TOKENS) for p in texts]
    vectors = last_positions_encode(lm, tokenizer, strings, 1 if query else len(STEP_TOKENS), settings["max_length"])
    return vectors[:, 0] if query else vectors
