"""Tiny, randomly initialised decoder LMs built locally, for the CPU quick start, tests and benchmarks.

No hub access: a byte-level BPE tokenizer is trained on the given texts with ``tokenizers`` and a
random Llama- or Qwen2-style config is instantiated. The folder written by :func:`build_tiny_model`
loads with the same code path as a real checkpoint (``O1EModel.build`` / ``AutoModelForCausalLM``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
#: ChatML as SmolLM2 writes it, with bos / eos as the turn markers (<|im_start|> / <|im_end|> there)
CHAT_TEMPLATE = ("{% for m in messages %}" + BOS + "{{ m['role'] }}\n{{ m['content'] }}" + EOS + "\n{% endfor %}"
                 "{% if add_generation_prompt %}" + BOS + "assistant\n{% endif %}")


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        chat_template=CHAT_TEMPLATE,
    )


def tiny_config(arch: str, vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4,
                kv_heads: int = 2, intermediate: int = 128, **overrides):
    """A random config of ``arch`` ('llama' or 'qwen2') with eos/bos/pad ids of :func:`train_tokenizer`."""
    if arch not in ("llama", "qwen2"):
        raise ValueError(f"tiny models are 'llama' or 'qwen2', not {arch!r}")
    kwargs = dict(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, intermediate_size=intermediate,
        max_position_embeddings=1024, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=False,
    )
    kwargs.update(overrides)
    return AutoConfig.for_model(arch, **kwargs)


def build_tiny_model(out_dir: str | Path, texts: Iterable[str], arch: str = "llama",
                     vocab_size: int = 1000, seed: int = 0, **config_overrides) -> Path:
    """Write a tiny random causal LM and its trained tokenizer to ``out_dir``; return the path."""
    out = Path(out_dir)
    tokenizer = train_tokenizer(texts, vocab_size)
    torch.manual_seed(seed)
    config = tiny_config(arch, len(tokenizer), **config_overrides)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def demo_texts() -> list[str]:
    """Titles and texts of the built-in demo corpus (resources/demo/corpus.jsonl)."""
    import json

    corpus = Path(__file__).parent / "resources" / "demo" / "corpus.jsonl"
    with open(corpus, encoding="utf-8") as f:
        return [f"{d['title']} {d['text']}" for d in map(json.loads, f)]


def main(argv=None) -> None:
    """python -m o1e_tevatron.tiny OUT_DIR [--arch llama|qwen2]: a tiny model for the CPU quick start."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--arch", default="llama", choices=["llama", "qwen2"])
    parser.add_argument("--vocab_size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_model(args.out_dir, demo_texts(), args.arch, args.vocab_size, args.seed))


if __name__ == "__main__":
    from o1e_tevatron.core.errors import run_command

    run_command(main)
