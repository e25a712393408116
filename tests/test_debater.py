"""DEBATER on the family base: step vectors, the loss against its formula, the teacher's stop-gradient,
step tokens that survive truncation and train, grad cache, DDP, and the driver end to end."""
import json
import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from o1e_tevatron.families.registry import load_model
from o1e_tevatron.collator import O1ECollator
from o1e_tevatron.driver.train import main
from o1e_tevatron.families.debater.model import DebaterConfig, DebaterModel
from o1e_tevatron.grad_cache import grad_cache_step
from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel

from distributed_worker import (finish, gradient_report,  # tests/ is on sys.path
                                two_ranks_against_one_process)

QUERIES = ["what causes colorectal cancer", "vitamin d", "does aspirin reduce the risk of heart attacks in adults"]
PASSAGES = [f"passage {i} about {w} and more words {i * 'x'}" for i, w in
            enumerate(["genes", "bones", "blood", "sun", "heart", "colon"])]
STEPS = 3


def build(model_dir, scale=30.0, query_token="", **kwargs):
    torch.manual_seed(0)
    config = DebaterConfig(num_steps=STEPS, scale=scale, query_instruction="Given a claim, find evidence:",
                           passage_max_len=24, query_token=query_token)
    model = DebaterModel.build(str(model_dir), config, lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0, **kwargs)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "trainable_tokens_delta" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def make_batch(model, side="left", queries=QUERIES, passages=PASSAGES):
    items = [{"query": q, "thought": None, "passages": passages[2 * i:2 * i + 2], "teacher_scores": None}
             for i, q in enumerate(queries)]
    return O1ECollator(model.template, side)(items)


def gradients(model):
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("side", ["left", "right"])
def test_step_vectors_from_a_padded_batch_equal_separate_unpadded_forwards(tiny_model_dir, side):
    model = build(tiny_model_dir).eval()
    b = make_batch(model, side)
    with torch.no_grad():
        steps = model.encode_passage(b["passage_input_ids"], b["passage_attention_mask"])
        queries = model.encode_query(b["query_input_ids"], b["query_attention_mask"])
        assert steps.shape == (len(PASSAGES), STEPS, model.config.hidden_size)
        for kind, batched, take in (("passage", steps, slice(-STEPS, None)), ("query", queries, -1)):
            ids, mask = b[f"{kind}_input_ids"], b[f"{kind}_attention_mask"]
            for row in range(ids.shape[0]):
                seq = ids[row][mask[row].bool()].unsqueeze(0)
                hidden = model.lm(input_ids=seq, output_hidden_states=True).hidden_states[-1][0]
                torch.testing.assert_close(batched[row], F.normalize(hidden[take], dim=-1), rtol=1e-5, atol=1e-5)


def test_loss_equals_the_formula_with_literal_numbers(tiny_llama_dir):
    """S_max = s * max_k cos, S_last = s * cos(last step); loss = (CE(S_max) + KL-style distillation) / 2."""
    model = build(tiny_llama_dir, scale=20.0)
    q = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    p = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[0.6, 0.8], [0.8, 0.6]],     # query 0: positive, negative
                      [[0.8, 0.6], [0.0, 1.0]], [[1.0, 0.0], [0.6, 0.8]]])    # query 1: positive, negative
    s_max = [[20 * max(sum(a * b for a, b in zip(qi, step)) for step in pj) for pj in p.tolist()] for qi in q.tolist()]
    s_last = [[20 * sum(a * b for a, b in zip(qi, pj[-1])) for pj in p.tolist()] for qi in q.tolist()]

    def log_softmax(row):
        top = max(row)
        norm = top + math.log(sum(math.exp(x - top) for x in row))
        return [x - norm for x in row]

    ce = -(log_softmax(s_max[0])[0] + log_softmax(s_max[1])[2]) / 2
    distill = -sum(sum(math.exp(t) * s for t, s in zip(log_softmax(s_max[i]), log_softmax(s_last[i])))
                   for i in range(2)) / 2
    parts = model.vector_loss_parts(q, p)
    assert parts["ce_loss"].item() == pytest.approx(ce, rel=1e-5)
    assert parts["distill_loss"].item() == pytest.approx(distill, rel=1e-5)
    assert model.objective(parts).item() == pytest.approx((ce + distill) / 2, rel=1e-5)


def test_the_teacher_side_gets_no_gradient(tiny_llama_dir):
    """Only the last step learns from self-distillation: S_max is a detached target."""
    model = build(tiny_llama_dir)
    q = F.normalize(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)), dim=-1).requires_grad_()
    p = F.normalize(torch.randn(4, STEPS, 8, generator=torch.Generator().manual_seed(1)), dim=-1).requires_grad_()
    best = torch.einsum("qd,pmd->qpm", q, p).argmax(-1)
    assert (best != STEPS - 1).any()  # some best step is not the last: the check has teeth
    (grad_p,) = torch.autograd.grad(model.vector_loss_parts(q, p)["distill_loss"], [p])
    assert grad_p[:, :-1].abs().max() == 0 and grad_p[:, -1].abs().max() > 0


def test_step_tokens_survive_truncation_of_a_long_passage(tiny_llama_dir):
    model = build(tiny_llama_dir)
    t = model.template
    long_passage = t.tokenize(" ".join(["colon cancer genes"] * 300))
    ids = t.passage(long_passage)
    assert ids[-STEPS:] == t.step_ids and ids[-STEPS - len(t.prompt_ids):-STEPS] == t.prompt_ids
    assert len(ids) == len(t.bos) + 24 + len(t.prompt_ids) + STEPS
    query = t.plain_query(t.tokenize_queries(["vitamin d"])[0])
    assert query[len(t.bos):len(t.bos) + len(t.instruction_ids)] == t.instruction_ids and query[-1] == t.eos_id


def test_added_step_tokens_have_embedding_rows_that_receive_gradient(tiny_llama_dir):
    from transformers import AutoTokenizer

    base_vocab = AutoTokenizer.from_pretrained(str(tiny_llama_dir)).get_vocab()
    model = build(tiny_llama_dir).train()
    assert not set(model.family_config.step_tokens) & set(base_vocab)  # the tiny vocabulary lacked them: added
    model(**make_batch(model)).loss.backward()
    deltas = [p for n, p in model.named_parameters() if "trainable_tokens_delta" in n and p.requires_grad]
    assert deltas and all(p.grad is not None and (p.grad.abs().sum(-1) > 0).all() for p in deltas)


def test_a_query_token_of_its_own_ends_every_query_is_pooled_there_and_trains(tiny_llama_dir):
    model = build(tiny_llama_dir, query_token="<query_vector>")
    t = model.template
    assert t.query_end_id == t.tokenizer.convert_tokens_to_ids("<query_vector>") != t.eos_id
    b = make_batch(model, "right")
    last = b["query_attention_mask"].sum(1) - 1
    assert (b["query_input_ids"][torch.arange(3), last] == t.query_end_id).all()
    with torch.no_grad():
        queries = model.encode_query(b["query_input_ids"], b["query_attention_mask"])
        for row in range(3):  # pooled at the query token: the unpadded sequence's last hidden state
            seq = b["query_input_ids"][row][: last[row] + 1].unsqueeze(0)
            hidden = model.lm(input_ids=seq, output_hidden_states=True).hidden_states[-1][0, -1]
            torch.testing.assert_close(queries[row], F.normalize(hidden, dim=-1), rtol=1e-5, atol=1e-5)
    model.train()
    model(**b).loss.backward()
    deltas = [p for n, p in model.named_parameters() if "trainable_tokens_delta" in n and p.requires_grad]
    assert deltas and all(p.grad is not None and (p.grad.abs().sum(-1) > 0).all() for p in deltas)
    assert {p.shape[0] for p in deltas} == {STEPS + 1}  # the steps' rows and the query token's
    eos_ended = b["query_input_ids"].clone()
    eos_ended[torch.arange(3), last] = t.eos_id
    with pytest.raises(ValueError, match="does not end with its query token"):
        model.encode_query(eos_ended, b["query_attention_mask"])
    with pytest.raises(ValueError, match="also a step token"):
        DebaterConfig(num_steps=2, step_tokens=["<a>", "<b>"], query_token="<b>")


def test_training_warns_when_queries_end_at_an_eos_that_closes_chat_turns(tiny_llama_dir, caplog):
    from o1e_tevatron.families.debater.model import warn_on_turn_closing_eos

    plain, own = build(tiny_llama_dir), build(tiny_llama_dir, query_token="<query_vector>")
    assert "</s>\n" in plain.template.tokenizer.apply_chat_template(  # the tiny template closes turns with eos
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], tokenize=False)
    with caplog.at_level("WARNING"):
        assert warn_on_turn_closing_eos(plain.template) and "--debater_query_token" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert not warn_on_turn_closing_eos(own.template) and not caplog.text
    plain.template.tokenizer.chat_template = None  # a base model: no turns, nothing to say
    assert not warn_on_turn_closing_eos(plain.template)


@pytest.mark.parametrize("q_chunk,p_chunk,side", [(2, 3, "left"), (1, 4, "right")])
def test_grad_cache_equals_the_unchunked_step(tiny_llama_dir, q_chunk, p_chunk, side):
    model = build(tiny_llama_dir).double().train()
    batch = make_batch(model, side)
    reference = model(**batch)
    reference.loss.backward()
    expected = gradients(model)
    out = grad_cache_step(model, batch, q_chunk, p_chunk)
    torch.testing.assert_close(out.loss, reference.loss.detach(), rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(out.distill_loss, reference.distill_loss, rtol=1e-6, atol=1e-9)
    got = gradients(model)
    assert got.keys() == expected.keys() and got
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-6, atol=1e-9, msg=name)


def test_ddp_with_gathered_negatives_equals_one_process(tiny_llama_dir, tmp_path):
    """Two gloo ranks through torch's DistributedDataParallel (the wrapped module's forward computes the
    loss, so DDP averages the gradients): the single-process gradients of the whole global batch."""
    r = two_ranks_against_one_process(__file__, str(tiny_llama_dir), str(tmp_path / "result.json"))
    assert r["loss"] == pytest.approx(r["ref_loss"], rel=1e-5)


def test_driver_trains_saves_loads_by_family_and_encodes(tiny_llama_dir, demo_dir, tmp_path):
    from o1e_tevatron.driver.encode import main as encode
    from o1e_tevatron.core.encoding import read_index_dir_header

    out = tmp_path / "out"
    trainer = main(["--family", "debater", "--model_name_or_path", str(tiny_llama_dir),
                    "--train_dir", str(demo_dir / "train.jsonl"), "--output_dir", str(out),
                    "--per_device_train_batch_size", "4", "--train_n_passages", "2", "--q_max_len", "16",
                    "--p_max_len", "32", "--report_to", "none", "--use_cpu", "--logging_steps", "1",
                    "--lora", "--learning_rate", "1e-3", "--max_steps", "3", "--save_strategy", "no",
                    "--debater_num_steps", "4", "--debater_scale", "25", "--disable_tqdm", "true",
                    "--debater_query_instruction", "Given a scientific claim, retrieve documents:",
                    "--debater_query_token", "<query_vector>"])
    logs = [h for h in trainer.state.log_history if "ce_loss" in h]
    assert len(logs) == 3 and all("distill_loss" in h and "ctr_loss" not in h for h in logs)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 16  # the release's LoRA default
    config = json.loads((out / "o1e_config.json").read_text())
    assert config["family"] == "debater" and config["num_steps"] == 4 and config["scale"] == 25
    assert config["query_token"] == "<query_vector>"

    model = load_model(out)
    assert isinstance(model, DebaterModel) and len(model.template.step_ids) == 4
    assert model.template.instruction_ids == model.template.tokenize("Given a scientific claim, retrieve documents:")
    assert model.template.query_end_id == model.template.tokenizer.convert_tokens_to_ids("<query_vector>")

    for scoring, rows in (("last", 600), ("max-steps", 2400)):
        index = tmp_path / f"index-{scoring}"
        assert encode(["--model_name_or_path", str(out), "--encode_in_path", str(demo_dir / "corpus.jsonl"),
                       "--faiss_index_dir", str(index), "--debater_scoring", scoring, "--output_dir", str(tmp_path),
                       "--per_device_eval_batch_size", "64"]) == 0
        count, dim, docids = read_index_dir_header(index)
        assert (count, dim, len(docids)) == (rows, model.config.hidden_size, rows)


def test_checkpoints_without_a_family_load_as_o1e(tiny_llama_dir, tmp_path):
    O1EModel.build(str(tiny_llama_dir), O1EConfig(), lora=True, lora_r=4).save(tmp_path / "ckpt")
    config = tmp_path / "ckpt" / "o1e_config.json"
    values = json.loads(config.read_text())
    assert values.pop("family") == "o1e"
    config.write_text(json.dumps(values))  # as written before families existed
    assert isinstance(load_model(tmp_path / "ckpt"), O1EModel)
    with pytest.raises(ValueError, match="'o1e' checkpoint, not 'debater'"):
        DebaterModel.load(tmp_path / "ckpt")


PER_RANK = 2


def _ddp_worker(model_dir, result_path):
    """Rank 0 computes the one-process reference before the process group exists (see distributed_worker)."""
    import faulthandler

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    faulthandler.enable(all_threads=True)
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    queries = QUERIES + ["sleep and memory"]
    passages = PASSAGES + ["deep sleep consolidates memory", "coffee at night"]
    reference = None
    if rank == 0:
        ref_model = build(model_dir).train()
        out = ref_model(**make_batch(ref_model, "left", queries, passages))
        out.loss.backward()
        reference = out.loss.item(), gradients(ref_model)
    dist.init_process_group("gloo")
    model = build(model_dir, negatives_x_device=True).train()
    mine = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
    batch = make_batch(model, "left", queries[mine], passages[2 * mine.start:2 * mine.stop])
    ddp = DistributedDataParallel(model)
    out = ddp(**batch)
    out.loss.backward()
    grads = gradients(model)
    loss = (out.ce_loss + out.distill_loss) / 2  # parts of the gathered batch: the same on every rank
    result = None
    if reference is not None:
        result = {"loss": loss.item(), "ref_loss": reference[0], **gradient_report(grads, reference[1])}
    finish(result_path, result)


if __name__ == "__main__":
    _ddp_worker(sys.argv[1], sys.argv[2])
