"""The family models' pooling and loss parts checked by value (issue 24's mutation campaign): the
poolers on literal hidden states, O1E's loss weights and parts, DEBATER's index rows and hits."""
from collections import namedtuple

import numpy as np
import pytest
import torch

from o1e_tevatron.families.debater.model import best_step_hits, index_rows
from o1e_tevatron.loss import DistillationLoss
from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel, pool_emb, pool_last, pool_mean
from o1e_tevatron.families.o1e.template import TemplateConfig

HIDDEN = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
                       [[7.0, 8.0], [9.0, 10.0], [11.0, 12.0]],
                       [[13.0, 14.0], [15.0, 16.0], [17.0, 18.0]]])
MASK = torch.tensor([[1, 1, 1], [0, 1, 1], [1, 0, 0]])  # full, left-padded, a single token (right-padded)


def test_last_pooling_takes_the_last_attended_position():
    assert pool_last(HIDDEN, None, MASK, None).tolist() == [[5.0, 6.0], [11.0, 12.0], [13.0, 14.0]]


def test_emb_pooling_takes_the_last_position_when_it_is_emb_and_refuses_otherwise():
    ids = torch.tensor([[4, 5, 9], [0, 5, 9], [9, 0, 0]])
    assert pool_emb(HIDDEN, ids, MASK, 9).tolist() == [[5.0, 6.0], [11.0, 12.0], [13.0, 14.0]]
    with pytest.raises(ValueError, match="^a sequence does not end with <emb>: build inputs with o1e_tevatron.families.o1e.template$"):
        pool_emb(HIDDEN, ids, MASK, 5)


def test_mean_pooling_averages_the_attended_positions_of_each_row():
    means = pool_mean(HIDDEN, None, MASK, None)
    assert means.tolist() == [[3.0, 4.0], [10.0, 11.0], [13.0, 14.0]]
    assert pool_mean(HIDDEN[:1], None, torch.zeros(1, 3, dtype=torch.long), None).tolist() == [[0.0, 0.0]]


def o1e(tiny_llama_dir, **kwargs):
    config = kwargs.pop("config", O1EConfig(template=TemplateConfig(thought_max_len=12)))
    return O1EModel.build(str(tiny_llama_dir), config, lora=False, **kwargs)


def test_o1e_loss_weights_and_parts_are_the_ones_given(tiny_llama_dir):
    model = o1e(tiny_llama_dir, config=O1EConfig(temperature=0.05, template=TemplateConfig(thought_max_len=12)),
                gen_loss_weight=0.25, kd_weight=0.5, kd_teacher_temperature=2.0, gen_loss_chunk_size=7)
    assert model.objective.weights == {"gen_loss": 0.25, "ctr_loss": 0.75, "kd_loss": 0.375}
    assert model.objective.gathered == frozenset()
    assert (model.gen_loss_weight, model.kd_weight, model.negatives_x_device) == (0.25, 0.5, False)
    assert model.contrastive.temperature == 0.05 and model.contrastive.negatives_x_device is False
    assert (model.generation.chunk_size, model.generation.global_token_mean) == (7, False)
    assert (model.distillation.temperature, model.distillation.teacher_temperature) == (0.05, 2.0)
    assert model.token_losses == {"gen_loss": model.generation}
    assert model.o1e_config is model.family_config


def test_o1e_defaults_and_gathered_negatives(tiny_llama_dir):
    model = o1e(tiny_llama_dir)
    assert model.objective.weights == {"gen_loss": 0.2, "ctr_loss": 0.8, "kd_loss": 0.0}
    assert (model.kd_weight, model.distillation.teacher_temperature, model.generation.chunk_size) == (0.0, 1.0, 1024)
    gathered = o1e(tiny_llama_dir, negatives_x_device=True)
    assert gathered.objective.gathered == frozenset({"ctr_loss"})
    assert gathered.contrastive.negatives_x_device is True and gathered.generation.global_token_mean is True
    assert gathered.negatives_x_device is True


@pytest.mark.parametrize("weight", [-0.01, 1.01, float("nan")])
def test_a_generation_weight_outside_0_1_is_refused(tiny_llama_dir, weight):
    with pytest.raises(ValueError, match=rf"^gen_loss_weight \(lambda of eq. 10\) must be in \[0, 1\], got {weight}$"):
        o1e(tiny_llama_dir, gen_loss_weight=weight)


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_generation_weights_at_the_ends_are_accepted(tiny_llama_dir, weight):
    assert o1e(tiny_llama_dir, gen_loss_weight=weight).objective.weights["ctr_loss"] == 1 - weight


def test_o1e_vector_parts_distil_only_with_a_weight_and_teacher_scores(tiny_llama_dir):
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.0, 1.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    model = o1e(tiny_llama_dir, kd_weight=0.5, kd_teacher_temperature=2.0)
    parts = model.vector_loss_parts(q, p, teacher)
    assert set(parts) == {"ctr_loss", "kd_loss"}
    expected = DistillationLoss(0.02, 2.0)(q, p, teacher)
    assert parts["kd_loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["ctr_loss"].item() == pytest.approx(model.contrastive(q, p).item(), rel=1e-6)
    assert set(model.vector_loss_parts(q, p, None)) == {"ctr_loss"}
    assert set(o1e(tiny_llama_dir).vector_loss_parts(q, p, teacher)) == {"ctr_loss"}  # kd_weight 0


def test_o1e_pooling_normalises_unless_told_not_to(tiny_llama_dir):
    model = o1e(tiny_llama_dir, config=O1EConfig(pooling="last", template=TemplateConfig(thought_max_len=12)))
    torch.testing.assert_close(model.pool(HIDDEN, None, MASK), torch.tensor(
        [[5 / 61 ** 0.5, 6 / 61 ** 0.5], [11 / 265 ** 0.5, 12 / 265 ** 0.5], [13 / 365 ** 0.5, 14 / 365 ** 0.5]]))
    raw = o1e(tiny_llama_dir, config=O1EConfig(pooling="mean", normalize=False,
                                               template=TemplateConfig(thought_max_len=12)))
    assert raw.pool(HIDDEN, None, MASK).tolist() == [[3.0, 4.0], [10.0, 11.0], [13.0, 14.0]]


# --- DEBATER at search time ----------------------------------------------------------------------
def test_index_rows_hold_the_last_step_or_every_step():
    steps = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    rows, ids = index_rows(steps, ["a", "b"])
    assert rows.tolist() == [[4.0, 5.0], [10.0, 11.0]] and ids == ["a", "b"] and rows.flags["C_CONTIGUOUS"]
    rows, ids = index_rows(steps, ["a", "b"], "max-steps")
    assert rows.tolist() == steps.reshape(6, 2).tolist() and ids == ["a", "a", "a", "b", "b", "b"]
    with pytest.raises(ValueError, match=r"^DEBATER scoring must be one of \('last', 'max-steps'\), not 'max'$"):
        index_rows(steps, ["a", "b"], "max")


def test_best_step_hits_keep_each_passage_once_at_its_best_rank():
    Hit = namedtuple("Hit", "docid score")
    hits = [Hit("a", 9), Hit("b", 8), Hit("a", 7), Hit("c", 6), Hit("b", 5), Hit("d", 4)]
    assert best_step_hits(hits, 3) == [Hit("a", 9), Hit("b", 8), Hit("c", 6)]
    assert best_step_hits(hits, 10) == [Hit("a", 9), Hit("b", 8), Hit("c", 6), Hit("d", 4)]
    assert best_step_hits([], 3) == []


def test_mean_pooling_of_bf16_states_past_256_tokens_is_still_their_mean():
    """The mask is cast to the states' dtype: sum and count round alike (bf16 holds 256, not 257)."""
    hidden = torch.ones(1, 257, 2, dtype=torch.bfloat16)
    assert pool_mean(hidden, None, torch.ones(1, 257, dtype=torch.long), None).tolist() == [[1.0, 1.0]]


# --- the family base: the shared forward -----------------------------------------------------------
def test_a_left_padded_row_embeds_as_it_does_alone(tiny_llama_dir):
    """The padding is masked out of attention (positions alone would not hide it)."""
    model = o1e(tiny_llama_dir).eval()
    ids = torch.tensor([[0, 0, 21, 22, 23], [31, 32, 33, 34, 35]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        padded = model.hidden_states(ids, mask)
        alone = model.hidden_states(ids[:1, 2:], mask[:1, 2:])
    torch.testing.assert_close(padded[0, 2:], alone[0], rtol=1e-5, atol=1e-5)


def forward_batch(model, with_thoughts):
    from o1e_tevatron.collator import O1ECollator

    items = [{"query": q, "thought": t if with_thoughts else None, "passages": [f"{q} evidence", "unrelated words"],
              "teacher_scores": [2.0, -1.0]} for q, t in (("cancer risk", "cells mutate"), ("vitamin d", "bones"))]
    return O1ECollator(model.template, "left")(items)


def test_forward_passes_teacher_scores_to_the_distillation_part(tiny_llama_dir):
    model = o1e(tiny_llama_dir, kd_weight=0.5, kd_teacher_temperature=2.0).eval()
    batch = forward_batch(model, with_thoughts=True)
    assert batch["teacher_scores"] is not None
    with torch.no_grad():
        out = model(**batch)
        expected = model.distillation(out.q_reps, out.p_reps, batch["teacher_scores"])
    assert out.kd_loss is not None and out.kd_loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.gen_loss.item() > 0


def test_forward_without_generation_labels_gives_a_float32_zero_generation_part(tiny_llama_dir):
    """Also when the model runs in float64: the zero is float32, as the computed part is."""
    model = o1e(tiny_llama_dir).eval().to(torch.float64)
    batch = forward_batch(model, with_thoughts=False)
    batch.pop("gen_labels", None)
    with torch.no_grad():
        out = model(**batch)
    assert out.q_reps.dtype == torch.float64
    assert out.gen_loss.dtype == torch.float32 and out.gen_loss.shape == () and out.gen_loss.item() == 0.0
    assert out.loss.item() == pytest.approx(0.8 * out.ctr_loss.item(), rel=1e-6)
