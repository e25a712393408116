"""Equivalence of the shared forward with the plain reference computations, and checkpoint round trips."""
import errno
import re
import shutil

import pytest
import torch
import torch.nn.functional as F

from o1e_tevatron.collator import O1ECollator
from o1e_tevatron.core.checkpoint import BaseModelMismatchError
from o1e_tevatron.core.tensors import position_ids_from_mask
from o1e_tevatron.families.o1e.loss import LinearCrossEntropySum, linear_head
from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel
from o1e_tevatron.loss import InfoNCELoss
from o1e_tevatron.families.o1e.template import TemplateConfig
from o1e_tevatron.tiny import build_tiny_model, demo_texts

pytestmark = pytest.mark.filterwarnings("error::FutureWarning")  # deprecations that become errors

QUERIES = ["what causes colorectal cancer", "vitamin d", "does aspirin reduce the risk of heart attacks in adults"]
THOUGHTS = ["mutations in cells of the colon accumulate", None, "aspirin inhibits platelets, so clots are rarer"]
PASSAGES = [f"passage {i} about {w}" for i, w in enumerate(["genes", "bones", "blood", "sun", "heart", "colon"])]


def perturb_lora(model, seed=0):
    """LoRA's B starts at zero; give it values so the adapter changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "trainable_tokens_delta" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)


@pytest.fixture
def model(tiny_model_dir):
    torch.manual_seed(0)
    m = O1EModel.build(str(tiny_model_dir), O1EConfig(template=TemplateConfig(thought_max_len=12)),
                       lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    perturb_lora(m)
    return m.eval()


def batch(model, side):
    collator = O1ECollator(model.template, side)
    items = [{"query": q, "thought": t, "passages": PASSAGES[2 * i:2 * i + 2], "teacher_scores": None}
             for i, (q, t) in enumerate(zip(QUERIES, THOUGHTS))]
    return collator(items)


def trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("side", ["left", "right"])
def test_generation_loss_equals_hf_labels_loss(model, side):
    b = batch(model, side)
    ids, mask, labels = b["query_input_ids"], b["query_attention_mask"], b["gen_labels"]
    shared = model.generation(model.hidden_states(ids, mask), labels, model.lm_head)
    shared_grads = torch.autograd.grad(shared, trainable(model), allow_unused=True)

    reference = model.lm(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                         labels=labels).loss
    reference_grads = torch.autograd.grad(reference, trainable(model), allow_unused=True)

    assert (labels != -100).sum() > 0
    torch.testing.assert_close(shared, reference, rtol=1e-6, atol=1e-6)
    for a, r in zip(shared_grads, reference_grads):
        if r is not None:
            torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("side", ["left", "right"])
def test_emb_vectors_equal_separate_unpadded_forwards(model, side):
    b = batch(model, side)
    for kind in ("query", "passage"):
        ids, mask = b[f"{kind}_input_ids"], b[f"{kind}_attention_mask"]
        batched = model.encode(ids, mask)
        for row in range(ids.shape[0]):
            seq = ids[row][mask[row].bool()].unsqueeze(0)
            assert seq[0, -1] == model.template.emb_id
            out = model.lm(input_ids=seq, output_hidden_states=True)
            reference = F.normalize(out.hidden_states[-1][0, -1], dim=-1)
            torch.testing.assert_close(batched[row], reference, rtol=1e-5, atol=1e-6)


def test_chunked_generation_loss_equals_unchunked(model):
    b = batch(model, "left")
    hidden = model.hidden_states(b["query_input_ids"], b["query_attention_mask"])
    model.train()
    losses, grads = [], []
    for chunk in (1024, 3):
        model.generation.chunk_size = chunk
        loss = model.generation(hidden, b["gen_labels"], model.lm_head)
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, trainable(model), retain_graph=True, allow_unused=True))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-6)
    for a, c in zip(*grads):
        if a is not None:
            torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def tied_model_dir(tmp_path_factory):
    """A tiny llama whose LM head is its input embedding (SmolLM2, Qwen2.5 and Gemma tie theirs)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-tied"), demo_texts(), tie_word_embeddings=True)


@pytest.mark.parametrize("chunk", [1024, 5])
def test_tied_head_with_trainable_token_rows_takes_the_fused_loss_and_equals_hf(tied_model_dir, chunk):
    torch.manual_seed(0)
    model = O1EModel.build(str(tied_model_dir), O1EConfig(template=TemplateConfig(thought_max_len=12)),
                           lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    perturb_lora(model)
    model.train()
    head = linear_head(model.lm_head)
    assert head is not None and head.row_index is not None and head.rows.requires_grad  # the fused path
    model.generation.chunk_size = chunk
    b = batch(model, "left")
    ids, mask, labels = b["query_input_ids"], b["query_attention_mask"], b["gen_labels"]
    params = trainable(model)
    assert any(p.shape == head.rows.shape for p in params)
    fused = model.generation(model.hidden_states(ids, mask), labels, model.lm_head)
    fused_grads = torch.autograd.grad(fused, params, allow_unused=True)
    reference = model.lm(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask),
                         labels=labels).loss
    reference_grads = torch.autograd.grad(reference, params, allow_unused=True)
    torch.testing.assert_close(fused, reference, rtol=1e-6, atol=1e-6)
    for a, r in zip(fused_grads, reference_grads):
        assert (a is None) == (r is None)
        if r is not None:
            torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("weight_trains", [False, True])
def test_fused_loss_with_replaced_rows_equals_cross_entropy_over_the_merged_head(weight_trains):
    g = torch.Generator().manual_seed(3)
    h = torch.randn(7, 6, generator=g, requires_grad=True)
    weight = torch.randn(11, 6, generator=g).requires_grad_(weight_trains)
    bias = torch.randn(11, generator=g).requires_grad_(weight_trains)
    index = torch.tensor([9, 2])
    rows = torch.randn(2, 6, generator=g, requires_grad=True)
    y = torch.tensor([2, 0, 9, 4, 10, 2, 7])
    inputs = [t for t in (h, weight, bias, rows) if t.requires_grad]

    fused = LinearCrossEntropySum.apply(h, weight, bias, index, rows, y)
    fused_grads = torch.autograd.grad(fused * 0.37, inputs)
    merged = F.linear(h, weight.index_copy(0, index, rows), bias)
    reference = F.cross_entropy(merged, y, reduction="sum")
    reference_grads = torch.autograd.grad(reference * 0.37, inputs)
    torch.testing.assert_close(fused, reference, rtol=1e-6, atol=1e-6)
    for a, r in zip(fused_grads, reference_grads):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6)


def test_joint_loss_is_weighted_sum_of_infonce_and_generation(model):
    b = batch(model, "left")
    out = model(**b)
    q, p = out.q_reps, out.p_reps
    scores = q @ p.T / model.o1e_config.temperature
    ctr = F.cross_entropy(scores, torch.arange(3) * 2)
    gen = model.lm(input_ids=b["query_input_ids"], attention_mask=b["query_attention_mask"],
                   position_ids=position_ids_from_mask(b["query_attention_mask"]), labels=b["gen_labels"]).loss
    torch.testing.assert_close(out.ctr_loss, ctr.detach())
    torch.testing.assert_close(out.gen_loss, gen.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.loss, 0.2 * gen + 0.8 * ctr, rtol=1e-6, atol=1e-6)


def test_temperature_and_gen_loss_weight_are_the_ones_given(tiny_llama_dir):
    """Non-default literals against a hand computation: a model that ignored either would use 0.02 / 0.2."""
    torch.manual_seed(0)
    m = O1EModel.build(str(tiny_llama_dir), O1EConfig(temperature=0.07, template=TemplateConfig(thought_max_len=12)),
                       lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0, gen_loss_weight=0.35)
    perturb_lora(m)
    b = batch(m, "left")
    out = m(**b)
    ctr = F.cross_entropy(out.q_reps @ out.p_reps.T / 0.07, torch.tensor([0, 2, 4]))
    gen = m.lm(input_ids=b["query_input_ids"], attention_mask=b["query_attention_mask"],
               position_ids=position_ids_from_mask(b["query_attention_mask"]), labels=b["gen_labels"]).loss
    torch.testing.assert_close(out.ctr_loss, ctr.detach(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.loss, 0.35 * gen + 0.65 * ctr, rtol=1e-6, atol=1e-6)


def test_full_fine_tuning_trains_the_lm_head(tiny_model_dir):
    """Without LoRA the LM head learns from the generation loss, with the gradient of HF's labels loss."""
    torch.manual_seed(0)
    m = O1EModel.build(str(tiny_model_dir), O1EConfig(template=TemplateConfig(thought_max_len=12)), lora=False)
    b = batch(m, "left")
    head = m.lm_head.weight
    assert head.requires_grad
    m(**b).loss.backward()
    shared = head.grad.clone()
    m.zero_grad()
    mask = b["query_attention_mask"]
    reference = m.lm(input_ids=b["query_input_ids"], attention_mask=mask, position_ids=position_ids_from_mask(mask),
                     labels=b["gen_labels"]).loss * m.gen_loss_weight
    reference.backward()
    assert shared.abs().sum() > 0
    torch.testing.assert_close(shared, head.grad, rtol=1e-5, atol=1e-7)


def test_infonce_scores_are_float32_for_bf16_vectors():
    """bf16 vectors: the loss equals the float32 computation on the same (bf16-valued) vectors."""
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(4, 64, generator=g), dim=-1).bfloat16()
    p = F.normalize(torch.randn(8, 64, generator=g), dim=-1).bfloat16()
    loss = InfoNCELoss(temperature=0.01)(q, p)
    reference = F.cross_entropy(q.double() @ p.double().T / 0.01, torch.arange(4) * 2)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), reference, rtol=1e-5, atol=1e-5)


def test_all_plain_batch_has_zero_generation_loss(model):
    collator = O1ECollator(model.template)
    b = collator([{"query": q, "thought": None, "passages": PASSAGES[:2], "teacher_scores": None} for q in QUERIES])
    out = model(**b)
    assert out.gen_loss.item() == 0.0 and torch.isfinite(out.loss)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_pooling_ablations_drop_emb(tiny_llama_dir, pooling):
    m = O1EModel.build(str(tiny_llama_dir), O1EConfig(pooling=pooling), lora=False).eval()
    b = O1ECollator(m.template)([{"query": "q", "thought": "t", "passages": ["p"], "teacher_scores": None}])
    assert m.template.emb_id not in b["query_input_ids"].tolist()[0]
    assert m(**b).q_reps.shape == (1, m.config.hidden_size)


def test_emb_pooling_rejects_sequences_without_emb(model):
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match="does not end with <emb>"):
        model.encode(ids, torch.ones_like(ids))


@pytest.mark.parametrize("merge", [False, True])
def test_checkpoint_round_trip_gives_same_vectors(model, tmp_path, merge):
    b = batch(model, "left")
    expected = model.encode(b["passage_input_ids"], b["passage_attention_mask"])
    model.save(tmp_path / "ckpt", merge=merge)
    files = {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert "o1e_config.json" in files and not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    assert ("adapter_model.safetensors" in files) != merge
    loaded = O1EModel.load(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.encode(b["passage_input_ids"], b["passage_attention_mask"]), expected,
                               rtol=1e-5, atol=1e-6)


def test_untrained_special_tokens_are_frozen_but_saved(tiny_llama_dir, tmp_path):
    m = O1EModel.build(str(tiny_llama_dir), O1EConfig(), lora=True, lora_r=4, train_special_tokens=False)
    deltas = [p for n, p in m.named_parameters() if "trainable_tokens_delta" in n]
    assert deltas and not any(p.requires_grad for p in deltas)
    rows = m.causal_lm.get_input_embeddings().weight[-4:].detach().clone()
    m.save(tmp_path / "ckpt")
    loaded = O1EModel.load(tmp_path / "ckpt")
    emb_ids = torch.tensor(loaded.tokenizer.convert_tokens_to_ids(["<query>", "</query>", "<thought>", "<emb>"]))
    torch.testing.assert_close(loaded.causal_lm.get_input_embeddings()(emb_ids), rows)


@pytest.fixture(scope="module")
def other_bases(tmp_path_factory):
    """Bases an adapter trained on the tiny Llama must refuse: another architecture of the same sizes and
    the same architecture with other random weights."""
    root = tmp_path_factory.mktemp("other-bases")
    return {"architecture": build_tiny_model(root / "qwen2", demo_texts(), arch="qwen2"),
            "weights": build_tiny_model(root / "llama-seed-1", demo_texts(), arch="llama", seed=1)}


@pytest.mark.parametrize("other, message", [("architecture", "another architecture"),
                                            ("weights", "the same architecture but other weights")])
def test_adapter_refuses_another_base_and_names_both(tiny_llama_dir, other_bases, tmp_path, other, message):
    m = O1EModel.build(str(tiny_llama_dir), O1EConfig(), lora=True, lora_r=4, lora_alpha=8)
    perturb_lora(m)
    m.save(tmp_path / "ckpt")
    wrong = str(other_bases[other])
    with pytest.raises(BaseModelMismatchError, match=rf"trained on the base model {re.escape(str(tiny_llama_dir))}, "
                                                     rf"but the base given is {re.escape(wrong)}: {message}"):
        O1EModel.load(tmp_path / "ckpt", base_model_name_or_path=wrong)


def test_adapter_loads_over_its_base_moved_or_in_another_dtype(model, tiny_model_dir, tmp_path):
    model.save(tmp_path / "ckpt")
    shutil.copytree(tiny_model_dir, tmp_path / "moved")
    b = batch(model, "left")
    expected = model.encode(b["passage_input_ids"], b["passage_attention_mask"])
    loaded = O1EModel.load(tmp_path / "ckpt", base_model_name_or_path=str(tmp_path / "moved"))
    torch.testing.assert_close(loaded.encode(b["passage_input_ids"], b["passage_attention_mask"]), expected,
                               rtol=1e-5, atol=1e-6)
    for dtype in ("bfloat16", "float16"):
        assert O1EModel.load(tmp_path / "ckpt", dtype=dtype) is not None


def test_a_full_disk_leaves_the_previous_save_intact(model, tmp_path, monkeypatch):
    b = batch(model, "left")
    expected = model.encode(b["passage_input_ids"], b["passage_attention_mask"])
    model.save(tmp_path / "ckpt")
    perturb_lora(model, seed=1)  # new weights, whose save runs out of disk at its last file

    def disk_full(self, folder):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(O1EConfig, "save", disk_full)
    with pytest.raises(OSError, match=r"no space left on device while saving .*ckpt: nothing was written there"):
        model.save(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no partial folder left behind
    loaded = O1EModel.load(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.encode(b["passage_input_ids"], b["passage_attention_mask"]), expected,
                               rtol=1e-5, atol=1e-6)
