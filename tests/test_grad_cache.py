"""Grad cache: the chunked two-pass step gives the unchunked joint loss and its gradients."""
import os
import sys

import pytest
import torch

from o1e_tevatron.collator import O1ECollator
from o1e_tevatron.driver.train import main
from o1e_tevatron.grad_cache import grad_cache_step, split_into_chunks
from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel
from o1e_tevatron.families.o1e.template import TemplateConfig

from distributed_worker import (average_like_ddp, finish, gradient_report, torchrun,  # tests/ is on sys.path
                                two_ranks_against_one_process)

pytestmark = pytest.mark.filterwarnings("error::FutureWarning")  # deprecations that become errors

QUERIES = ["what causes colorectal cancer", "vitamin d", "does aspirin reduce the risk of heart attacks in adults",
           "smoking and lung cancer", "sleep and memory"]
THOUGHTS = ["mutations in cells of the colon accumulate", None, "aspirin inhibits platelets, so clots are rarer",
            "tobacco smoke carries carcinogens into the lungs", "deep sleep consolidates what was learned"]
PASSAGES = [f"passage {i} about {w} and more words {i * 'x'}" for i, w in
            enumerate(["genes", "bones", "blood", "sun", "heart", "colon", "lungs", "teeth", "sleep", "diet"])]


def build(model_dir, lora_dropout=0.0, **kwargs):
    torch.manual_seed(0)
    model = O1EModel.build(str(model_dir), O1EConfig(template=TemplateConfig(thought_max_len=12)), lora=True,
                           lora_r=4, lora_alpha=8, lora_dropout=lora_dropout, gen_loss_weight=0.3, **kwargs)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "trainable_tokens_delta" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.double().train()  # float64: chunked and unchunked may differ only by rounding


def make_batch(model, side="left", teacher=False):
    items = [{"query": q, "thought": t, "passages": PASSAGES[2 * i:2 * i + 2],
              "teacher_scores": [1.0, 0.0] if teacher else None} for i, (q, t) in enumerate(zip(QUERIES, THOUGHTS))]
    return O1ECollator(model.template, side)(items)


def gradients(model):
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def assert_same_gradients(got, expected):
    assert got.keys() == expected.keys() and len(got) > 0
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-6, atol=1e-9, msg=name)


@pytest.mark.parametrize("q_chunk,p_chunk,side", [(2, 3, "left"), (3, 4, "right"), (1, 7, "left"), (8, 16, "left")])
def test_chunked_loss_and_gradients_equal_unchunked(tiny_model_dir, q_chunk, p_chunk, side):
    model = build(tiny_model_dir, kd_weight=0.5)
    batch = make_batch(model, side, teacher=True)
    reference = model(**batch)
    reference.loss.backward()
    expected = gradients(model)

    out = grad_cache_step(model, batch, q_chunk, p_chunk)
    torch.testing.assert_close(out.loss, reference.loss.detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(out.gen_loss, reference.gen_loss, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(out.ctr_loss, reference.ctr_loss, rtol=1e-6, atol=1e-9)
    assert_same_gradients(gradients(model), expected)


def chunked_forward_with_full_graph(model, batch, q_chunk, p_chunk):
    """The reference under dropout: the same chunks in the same order (so the same dropout masks as
    grad cache's first pass), but all with autograd, and one backward of the joint loss."""
    labels = batch["gen_labels"]
    queries = split_into_chunks(batch["query_input_ids"], batch["query_attention_mask"], labels, q_chunk)
    passages = split_into_chunks(batch["passage_input_ids"], batch["passage_attention_mask"], None, p_chunk)
    hidden = [model.hidden_states(c.input_ids, c.attention_mask) for c in queries]
    q_reps = torch.cat([model.pool(h, c.input_ids, c.attention_mask) for h, c in zip(hidden, queries)])
    p_reps = torch.cat([model.encode(c.input_ids, c.attention_mask) for c in passages])
    token_sum = sum(model.generation.token_sum(h, c.labels, model.lm_head)[0] for h, c in zip(hidden, queries))
    gen = token_sum / int((labels[:, 1:] != -100).sum())
    loss = model.gen_loss_weight * gen + (1 - model.gen_loss_weight) * model.contrastive(q_reps, p_reps)
    loss.backward()
    return loss.detach()


def test_dropout_is_replayed_between_the_two_passes(tiny_llama_dir):
    model = build(tiny_llama_dir, lora_dropout=0.3)
    batch = make_batch(model)
    torch.manual_seed(123)
    expected_loss = chunked_forward_with_full_graph(model, batch, 2, 3)
    expected = gradients(model)

    torch.manual_seed(123)
    out = grad_cache_step(model, batch, 2, 3)
    torch.testing.assert_close(out.loss, expected_loss, rtol=1e-6, atol=1e-9)
    assert_same_gradients(gradients(model), expected)

    torch.manual_seed(124)  # the check has teeth: other masks give other gradients
    chunked_forward_with_full_graph(model, batch, 2, 3)
    other = gradients(model)
    assert any(not torch.allclose(other[n], expected[n], rtol=1e-4, atol=1e-6) for n in expected)


def test_loss_scale_scales_gradients_not_the_loss(tiny_llama_dir):
    model = build(tiny_llama_dir)
    batch = make_batch(model)
    full = grad_cache_step(model, batch, 2, 4)
    expected = gradients(model)
    quarter = grad_cache_step(model, batch, 2, 4, loss_scale=0.25)
    torch.testing.assert_close(quarter.loss, full.loss)
    assert_same_gradients({n: g * 4 for n, g in gradients(model).items()}, expected)


def driver_flags(model_dir, demo_dir, out, *extra):
    return ["--model_name_or_path", str(model_dir), "--train_dir", str(demo_dir / "train.jsonl"),
            "--output_dir", str(out), "--per_device_train_batch_size", "4", "--train_n_passages", "2",
            "--q_max_len", "16", "--p_max_len", "32", "--thought_max_len", "16", "--report_to", "none",
            "--use_cpu", "--logging_steps", "1", "--seed", "7", "--disable_tqdm", "true", "--lora", "--lora_r", "4",
            "--lora_dropout", "0", "--learning_rate", "1e-3", "--max_steps", "3", "--save_strategy", "no", *extra]


def test_driver_with_grad_cache_trains_like_without(tiny_llama_dir, demo_dir, tmp_path):
    """Same data, same seed: --grad_cache (chunks 3 and 5, not dividing 4 and 8) logs the same losses,
    with gradient accumulation too."""
    def losses(trainer):
        return [h[k] for h in trainer.state.log_history if "ctr_loss" in h for k in ("loss", "ctr_loss", "gen_loss")]

    plain = main(driver_flags(tiny_llama_dir, demo_dir, tmp_path / "plain", "--gradient_accumulation_steps", "2"))
    cached = main(driver_flags(tiny_llama_dir, demo_dir, tmp_path / "gc", "--gradient_accumulation_steps", "2",
                               "--grad_cache", "--gc_q_chunk_size", "3", "--gc_p_chunk_size", "5"))
    assert len(losses(cached)) == 3 * 3
    assert losses(cached) == pytest.approx(losses(plain), rel=1e-4, abs=1e-4)
    assert (tmp_path / "gc" / "adapter_model.safetensors").exists()


def test_grad_cache_with_cross_device_negatives_equals_single_process(tiny_llama_dir, tmp_path):
    """Two gloo ranks, grad cache + gathered negatives, gradients averaged as the trainer does, against
    one process computing the unchunked loss of the whole global batch."""
    r = two_ranks_against_one_process(__file__, str(tiny_llama_dir), str(tmp_path / "result.json"))
    assert r["loss"] == pytest.approx(r["ref_loss"], rel=1e-5)


def test_driver_with_grad_cache_under_torchrun(tiny_llama_dir, demo_dir, tmp_path):
    """DDP (gloo) + gathered negatives + grad cache through the trainer, gradients averaged once per step."""
    flags = driver_flags(tiny_llama_dir, demo_dir, tmp_path / "out", "--negatives_x_device", "--grad_cache",
                         "--gc_q_chunk_size", "3", "--gc_p_chunk_size", "5", "--ddp_backend", "gloo")
    torchrun("-m", "o1e_tevatron.driver.train", *flags)
    assert (tmp_path / "out" / "adapter_model.safetensors").exists()


PER_RANK = 2  # 4 of the 5 queries: 2 per rank


def _single_process_reference(model_dir):
    """The unchunked joint loss and gradients of the two ranks' global batch, in one process."""
    ref_model = build(model_dir)
    full = make_batch(ref_model)
    first = {k: v[:2 * PER_RANK] if k.startswith(("query", "gen")) else v[:4 * PER_RANK] for k, v in full.items()}
    reference = ref_model(**first)
    reference.loss.backward()
    return reference.loss.item(), gradients(ref_model)


def _cross_device_worker(model_dir, result_path):
    """Computed before the process group exists, the reference keeps rank 1 out of a long gloo wait."""
    import faulthandler

    import torch.distributed as dist

    faulthandler.enable(all_threads=True)
    rank = int(os.environ["RANK"])
    reference = _single_process_reference(model_dir) if rank == 0 else None
    dist.init_process_group("gloo")
    model = build(model_dir, negatives_x_device=True)
    full = make_batch(model)
    items_q = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
    items_p = slice(2 * rank * PER_RANK, 2 * (rank + 1) * PER_RANK)
    local = {"query_input_ids": full["query_input_ids"][items_q], "query_attention_mask": full["query_attention_mask"][items_q],
             "gen_labels": full["gen_labels"][items_q], "passage_input_ids": full["passage_input_ids"][items_p],
             "passage_attention_mask": full["passage_attention_mask"][items_p]}
    out = grad_cache_step(model, local, 1, 3)
    grads = gradients(model)
    gen = average_like_ddp(grads, out.gen_loss)
    result = None
    if reference is not None:
        ref_loss, ref_grads = reference
        joint = model.gen_loss_weight * gen + (1 - model.gen_loss_weight) * out.ctr_loss
        result = {"loss": joint.item(), "ref_loss": ref_loss, **gradient_report(grads, ref_grads)}
    finish(result_path, result)


if __name__ == "__main__":
    _cross_device_worker(sys.argv[1], sys.argv[2])
