"""The losses checked by value on literal tensors (issue 24's mutation campaign): defaults, refusals,
hand-computed numbers, the chunking of the generation loss and the head that is not a plain Linear."""
import math

import pytest
import torch
import torch.nn.functional as F

import o1e_tevatron.families.o1e.loss as o1e_loss_module
from o1e_tevatron.families.base import IGNORE_INDEX
from o1e_tevatron.families.debater.loss import MaxStepSelfDistillationLoss
from o1e_tevatron.families.o1e.loss import LinearCrossEntropySum, LinearHead, ThoughtGenerationLoss, _vocab_size, linear_head
from o1e_tevatron.loss import DistillationLoss, InfoNCELoss, contrastive_batch


def log_softmax(row):
    top = max(row)
    norm = top + math.log(sum(math.exp(x - top) for x in row))
    return [x - norm for x in row]


def softmax(row):
    return [math.exp(x) for x in log_softmax(row)]


# --- InfoNCE and the contrastive batch --------------------------------------------------------
def test_infonce_defaults():
    loss = InfoNCELoss()
    assert loss.temperature == 0.02 and loss.negatives_x_device is False


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), 0.0, -0.5])
def test_infonce_refuses_a_temperature_that_is_not_a_finite_positive_number(temperature):
    with pytest.raises(ValueError, match=f"^temperature must be a finite number > 0, got {temperature}$"):
        InfoNCELoss(temperature)


def test_infonce_with_literal_numbers():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [1.0, 1.0]])  # groups of 2: positives 0 and 2
    loss = InfoNCELoss(temperature=0.5)
    scores = [[2.0, 1.0, 0.0, 2.0], [0.0, 1.0, 2.0, 2.0]]
    assert loss.scores(q, p).tolist() == scores
    expected = -(log_softmax(scores[0])[0] + log_softmax(scores[1])[2]) / 2
    assert loss(q, p).item() == pytest.approx(expected, rel=1e-6)


def test_the_contrastive_batch_targets_each_querys_first_passage():
    q, p = torch.zeros(2, 4), torch.zeros(6, 4)
    q_out, p_out, target = contrastive_batch(q, p, negatives_x_device=True)  # one process: nothing gathered
    assert q_out is q and p_out is p and target.tolist() == [0, 3]
    assert contrastive_batch(torch.zeros(3, 1), torch.zeros(3, 1), False)[2].tolist() == [0, 1, 2]


def test_passages_that_do_not_split_into_groups_are_refused():
    with pytest.raises(ValueError, match="^5 passages do not split into groups for 2 queries$"):
        contrastive_batch(torch.zeros(2, 4), torch.zeros(5, 4), False)


# --- DEBATER's max-step loss ------------------------------------------------------------------
def test_max_step_defaults_and_refusals():
    loss = MaxStepSelfDistillationLoss()
    assert loss.scale == 30.0 and loss.negatives_x_device is False
    for scale in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(ValueError, match=f"^scale must be a finite number > 0, got {scale}$"):
            MaxStepSelfDistillationLoss(scale)


def test_step_scores_are_scaled_cosines_in_float32():
    q = torch.tensor([[1.0, 0.0]], dtype=torch.bfloat16)
    p = torch.tensor([[[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [0.25, 0.0]]], dtype=torch.bfloat16)
    scores = MaxStepSelfDistillationLoss(scale=2.0).step_scores(q, p)
    assert scores.dtype == torch.float32 and scores.tolist() == [[[1.0, 2.0], [0.0, 0.5]]]


def test_max_step_loss_parts_with_literal_numbers():
    q = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.5, 0.5]]])  # best steps 1.0 and 0.5; last 0, 0.5
    parts = MaxStepSelfDistillationLoss(scale=2.0)(q, p)
    best, last = [2.0, 1.0], [0.0, 1.0]
    assert parts["ce_loss"].item() == pytest.approx(-log_softmax(best)[0], rel=1e-6)
    expected = -sum(t * s for t, s in zip(softmax(best), log_softmax(last)))
    assert parts["distill_loss"].item() == pytest.approx(expected, rel=1e-6)


# --- distillation ------------------------------------------------------------------------------
def test_distillation_defaults():
    loss = DistillationLoss()
    assert loss.temperature == 0.02 and loss.teacher_temperature == 1.0


def test_distillation_with_literal_numbers():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])  # each query's own group of 2
    teacher = torch.tensor([[0.0, math.log(3.0)], [2.0, 0.0]])
    loss = DistillationLoss(temperature=0.5, teacher_temperature=2.0)(q, p, teacher)
    students = [[2.0, 0.0], [0.0, 1.0]]
    teachers = [softmax([0.0, math.log(3.0) / 2]), softmax([1.0, 0.0])]
    expected = -sum(sum(t * s for t, s in zip(teachers[i], log_softmax(students[i]))) for i in range(2)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_distillation_is_in_float32_for_bf16_inputs():
    q = torch.tensor([[1.0, 0.0]], dtype=torch.bfloat16)
    p = torch.tensor([[0.3, 0.0], [0.7, 0.0]], dtype=torch.bfloat16)
    teacher = torch.tensor([[0.1, 0.9]], dtype=torch.bfloat16)
    loss = DistillationLoss(temperature=0.01, teacher_temperature=0.1)(q, p, teacher)
    reference = DistillationLoss(temperature=0.01, teacher_temperature=0.1)(q.float(), p.float(), teacher.float())
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(reference.item(), rel=1e-6)


# --- the generation loss -------------------------------------------------------------------------
class Head(torch.nn.Module):
    """An LM head that is not a plain nn.Linear (the loss then calls the module)."""

    def __init__(self, weight, out_features=True):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)
        if out_features:
            self.out_features = weight.shape[0]

    def forward(self, h):
        return h @ self.weight.T


def generation_batch():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 5, 4, generator=g, requires_grad=True)
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 1, 0], [IGNORE_INDEX, 2, 2, IGNORE_INDEX, 5]])
    weight = torch.randn(6, 4, generator=g)
    # the labelled positions predict their token from the position before them
    h = torch.stack([hidden[0, 1], hidden[0, 2], hidden[0, 3], hidden[1, 0], hidden[1, 1], hidden[1, 3]])
    y = torch.tensor([3, 1, 0, 2, 2, 5])
    return hidden, labels, weight, h, y


def test_generation_loss_defaults():
    loss = ThoughtGenerationLoss()
    assert (loss.chunk_size, loss.global_token_mean, loss.max_chunk_logits) == (1024, False, 2 ** 24)


@pytest.mark.parametrize("chunk_size, max_logits, vocab, positions", [
    (1024, 2 ** 24, 100, 1024), (1024, 2 ** 24, 2 ** 20, 16), (1024, 2 ** 24, 2 ** 25, 1), (7, 2 ** 24, 10, 7),
    (1024, 100, 10, 10), (1024, 99, 10, 9),
])
def test_positions_per_chunk(chunk_size, max_logits, vocab, positions):
    assert ThoughtGenerationLoss(chunk_size, max_chunk_logits=max_logits).positions_per_chunk(vocab) == positions


@pytest.mark.parametrize("module_head", [False, True])
@pytest.mark.parametrize("chunk", [1024, 4, 1])
def test_generation_loss_is_the_mean_cross_entropy_of_the_labelled_tokens(module_head, chunk):
    hidden, labels, weight, h, y = generation_batch()
    head = Head(weight) if module_head else torch.nn.Linear(4, 6, bias=False)
    if not module_head:
        head.weight.data.copy_(weight)
    loss = ThoughtGenerationLoss(chunk_size=chunk)(hidden, labels, head)
    reference = F.cross_entropy(h @ weight.T, y)
    torch.testing.assert_close(loss, reference, rtol=1e-6, atol=1e-6)
    total, count = ThoughtGenerationLoss(chunk_size=chunk).token_sum(hidden, labels, head)
    assert count == 6
    torch.testing.assert_close(total, reference * 6, rtol=1e-6, atol=1e-6)
    (grad,) = torch.autograd.grad(loss, [hidden])
    (reference_grad,) = torch.autograd.grad(reference, [hidden])
    torch.testing.assert_close(grad, reference_grad, rtol=1e-5, atol=1e-7)


def test_a_module_head_under_no_grad_gives_the_same_sum():
    hidden, labels, weight, h, y = generation_batch()
    with torch.no_grad():
        total, count = ThoughtGenerationLoss(chunk_size=2).token_sum(hidden, labels, Head(weight))
    assert count == 6 and not total.requires_grad
    assert total.item() == pytest.approx(F.cross_entropy(h @ weight.T, y, reduction="sum").item(), rel=1e-6)


def test_a_module_heads_chunks_follow_its_vocabulary_size(monkeypatch):
    hidden, labels, weight, h, y = generation_batch()
    seen = []
    head = Head(weight)
    forward = head.forward
    head.forward = lambda x: seen.append(x.shape[0]) or forward(x)
    ThoughtGenerationLoss(max_chunk_logits=12).token_sum(hidden.detach(), labels, head)  # 12 // 6 = 2 positions
    assert seen == [2, 2, 2]


def test_a_linear_heads_chunks_go_through_the_fused_loss_and_follow_its_vocabulary(monkeypatch):
    """A plain nn.Linear head takes LinearCrossEntropySum (logits never kept), in chunks sized by its
    vocabulary (weight rows), not by the hidden width."""
    hidden, labels, weight, h, y = generation_batch()
    head = torch.nn.Linear(4, 6, bias=False)
    head.weight.data.copy_(weight)
    seen = []
    fused = LinearCrossEntropySum.apply
    monkeypatch.setattr(LinearCrossEntropySum, "apply", lambda h, *rest: seen.append(h.shape[0]) or fused(h, *rest))
    total, count = ThoughtGenerationLoss(max_chunk_logits=12).token_sum(hidden.detach(), labels, head)  # 12 // 6 = 2
    assert seen == [2, 2, 2] and count == 6
    assert total.item() == pytest.approx(F.cross_entropy(h.detach() @ weight.T, y, reduction="sum").item(), rel=1e-6)


def test_the_vocabulary_size_of_a_head():
    assert _vocab_size(Head(torch.zeros(6, 4))) == 6
    assert _vocab_size(Head(torch.zeros(6, 4), out_features=False)) == 6
    assert _vocab_size(torch.nn.Linear(4, 9)) == 9


def test_a_head_that_states_its_width_is_believed_over_its_weight_rows():
    """A head module may hold a weight that is not its full output (a shard, a tied or padded matrix):
    its own ``out_features`` says how many logits its forward gives, so the chunking follows that."""
    head = Head(torch.zeros(6, 4))
    head.out_features = 11
    assert _vocab_size(head) == 11


def test_nothing_labelled_is_a_zero_loss_connected_to_the_graph():
    hidden = torch.randn(2, 3, 4, requires_grad=True)
    labels = torch.full((2, 3), IGNORE_INDEX)
    labels[:, 0] = 1  # the first position predicts nothing: still nothing labelled
    total, count = ThoughtGenerationLoss().token_sum(hidden, labels, torch.nn.Linear(4, 6))
    assert count == 0 and total.item() == 0.0 and total.requires_grad
    loss = ThoughtGenerationLoss()(hidden, labels, torch.nn.Linear(4, 6))
    assert loss.item() == 0.0
    loss.backward()
    assert hidden.grad.abs().sum() == 0


@pytest.mark.parametrize("global_token_mean", [False, True])
def test_the_token_weight_is_one_over_the_labelled_tokens_on_one_process(global_token_mean):
    _, labels, weight, h, y = generation_batch()
    loss = ThoughtGenerationLoss(global_token_mean=global_token_mean)
    assert loss.token_weight(labels, "cpu") == pytest.approx(1 / 6)
    assert loss.token_weight(torch.full((1, 4), IGNORE_INDEX), "cpu") == 1.0
    hidden, labels, weight, h, y = generation_batch()
    head = Head(weight)
    torch.testing.assert_close(loss(hidden, labels, head), F.cross_entropy(h @ weight.T, y), rtol=1e-6, atol=1e-6)


# --- the fused linear + cross entropy ----------------------------------------------------------
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("weight_trains", [False, True])
def test_fused_loss_without_replaced_rows_equals_cross_entropy(with_bias, weight_trains):
    g = torch.Generator().manual_seed(5)
    h = torch.randn(5, 3, generator=g, requires_grad=True)
    weight = torch.randn(7, 3, generator=g).requires_grad_(weight_trains)
    bias = torch.randn(7, generator=g).requires_grad_(weight_trains) if with_bias else None
    y = torch.tensor([0, 6, 3, 3, 1])
    inputs = [t for t in (h, weight, bias) if t is not None and t.requires_grad]
    fused = LinearCrossEntropySum.apply(h, weight, bias, None, None, y)
    reference = F.cross_entropy(F.linear(h, weight, bias), y, reduction="sum")
    torch.testing.assert_close(fused, reference, rtol=1e-6, atol=1e-6)
    for a, r in zip(torch.autograd.grad(fused * 0.37, inputs), torch.autograd.grad(reference * 0.37, inputs)):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-6)


def test_fused_loss_under_no_grad_is_the_value_only():
    g = torch.Generator().manual_seed(6)
    h, weight, y = torch.randn(4, 3, generator=g), torch.randn(5, 3, generator=g), torch.tensor([1, 2, 3, 4])
    with torch.no_grad():
        fused = LinearCrossEntropySum.apply(h, weight, None, None, None, y)
    assert fused.item() == pytest.approx(F.cross_entropy(h @ weight.T, y, reduction="sum").item(), rel=1e-6)


def test_a_plain_linear_head_is_used_as_it_is_and_anything_else_is_called():
    linear = torch.nn.Linear(4, 6)
    head = linear_head(linear)
    assert isinstance(head, LinearHead) and head.weight is linear.weight and head.bias is linear.bias
    assert head.row_index is None and head.rows is None

    class MyLinear(torch.nn.Linear):
        pass

    assert linear_head(MyLinear(4, 6)) is None
    assert linear_head(Head(torch.zeros(6, 4))) is None


# --- PEFT's trainable-token rows as a head -------------------------------------------------------
def token_head(base=None, indices=(1, 3)):
    from peft.tuners.trainable_tokens import TrainableTokensLayer

    layer = TrainableTokensLayer(base if base is not None else torch.nn.Linear(4, 6, bias=False), "default",
                                 token_indices=list(indices))
    layer.update_layer("default", token_indices=list(indices), init_weights=False)
    wrapper = torch.nn.Module()
    wrapper.token_adapter = layer
    return wrapper, layer


def test_trainable_token_rows_over_a_linear_are_a_head_with_replaced_rows():
    wrapper, layer = token_head()
    head = linear_head(wrapper)
    assert head.weight is layer.base_layer.weight and head.bias is None
    assert head.row_index.tolist() == [1, 3] and head.row_index.dtype == torch.int64
    assert torch.equal(head.rows, layer.trainable_tokens_delta["default"]) and head.rows.dtype == torch.float32
    with torch.no_grad():
        layer.base_layer.weight.data = layer.base_layer.weight.data.to(torch.float64)
    assert linear_head(wrapper).rows.dtype == torch.float64  # the rows in the head weight's dtype


@pytest.mark.parametrize("state", ["bias", "not-linear", "merged", "disabled", "wrapper-disabled", "two-active"])
def test_trainable_token_rows_the_fused_loss_cannot_take_are_left_to_the_module(state):
    class MyLinear(torch.nn.Linear):
        pass

    base = {"bias": torch.nn.Linear(4, 6), "not-linear": MyLinear(4, 6, bias=False)}.get(state)
    wrapper, layer = token_head(base)
    assert state in ("bias", "not-linear") or linear_head(wrapper) is not None
    if state == "merged":
        layer.merged_adapters = ["default"]
    elif state == "disabled":
        layer._disable_adapters = True
    elif state == "wrapper-disabled":
        wrapper.disable_adapters = True
    elif state == "two-active":
        layer.update_layer("other", token_indices=[2], init_weights=True)
        layer._active_adapter = ["default", "other"]
    assert linear_head(wrapper) is None


def test_a_wrapper_whose_adapters_are_enabled_keeps_the_fused_head():
    wrapper, _ = token_head()
    wrapper.disable_adapters = False
    assert linear_head(wrapper) is not None


# --- the gradients of the fused loss ------------------------------------------------------------
def test_head_grads_are_computed_only_for_the_inputs_that_need_them():
    from o1e_tevatron.families.o1e.loss import _head_grads

    g = torch.tensor([[0.5, -0.5, 0.0], [0.25, 0.25, -0.5]])
    h = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    bias = torch.zeros(3)
    none = _head_grads(g, h, weight, None, None, (False, False, False, False, False, False), bias)
    assert none == (None, None, None, None, None, None)
    grad_h, grad_w, grad_b, _, grad_rows, _ = _head_grads(g, h, weight, None, None, (True, True, True, False, False, False), bias)
    assert grad_h.tolist() == [[0.5, -0.5], [-0.25, -0.25]] and grad_w.tolist() == [[1.25, 2.0], [0.25, 0.0], [-1.5, -2.0]]
    assert grad_b.tolist() == [0.75, -0.25, -0.5] and grad_rows is None
    rows, index = torch.tensor([[2.0, 2.0]]), torch.tensor([1])
    grad_h, grad_w, grad_b, _, grad_rows, _ = _head_grads(g, h, weight, index, rows, (True, True, False, False, True, False))
    assert grad_h.tolist() == [[0.5 - 0.5 * 2, -0.5 - 0.5 * 1], [-0.25 + 0.25 * 2, -0.25 + 0.25 * 1]]
    assert grad_w.tolist() == [[1.25, 2.0], [0.0, 0.0], [-1.5, -2.0]] and grad_b is None
    assert grad_rows.tolist() == [[0.25, 0.0]]
    _, _, _, _, grad_rows, _ = _head_grads(g, h, weight, index, rows, (True, False, False, False, False, False))
    assert grad_rows is None


def test_softmax_minus_onehot_in_place():
    from o1e_tevatron.families.o1e.loss import _softmax_minus_onehot

    probs = torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    out = _softmax_minus_onehot(probs, torch.tensor([1, 0]))
    assert out is probs and out.tolist() == [[0.5, -0.5], [-0.75, 0.75]]


@pytest.mark.parametrize("weight_trains", [False, True])
def test_fused_loss_in_bfloat16_gives_bfloat16_gradients_close_to_float32(weight_trains):
    g = torch.Generator().manual_seed(8)
    h32, w32 = torch.randn(6, 4, generator=g), torch.randn(9, 4, generator=g)
    y = torch.tensor([0, 8, 3, 3, 1, 5])
    h = h32.to(torch.bfloat16).requires_grad_()
    weight = w32.to(torch.bfloat16).requires_grad_(weight_trains)
    rows, index = torch.randn(2, 4, generator=g).to(torch.bfloat16).requires_grad_(), torch.tensor([2, 7])
    fused = LinearCrossEntropySum.apply(h, weight, None, index, rows, y)
    inputs = [t for t in (h, weight, rows) if t.requires_grad]
    grads = torch.autograd.grad(fused / 3, inputs)
    assert fused.dtype == torch.float32 and all(gr.dtype == torch.bfloat16 for gr in grads)
    reference_inputs = [t.detach().float().requires_grad_() for t in inputs]
    h_ref = reference_inputs[0]
    w_ref = reference_inputs[1] if weight_trains else weight.detach().float()
    merged = w_ref.index_copy(0, index, reference_inputs[-1])
    reference = F.cross_entropy(h_ref @ merged.T, y, reduction="sum")
    torch.testing.assert_close(fused, reference, rtol=2e-3, atol=0)  # bf16 logits: 8 bits of mantissa
    for a, r in zip(grads, torch.autograd.grad(reference / 3, reference_inputs)):
        torch.testing.assert_close(a.float(), r, rtol=2e-2, atol=2e-2)


def test_infonce_gathers_every_ranks_vectors_when_asked(monkeypatch):
    import o1e_tevatron.loss as loss_module

    gathered = []
    monkeypatch.setattr(loss_module, "gather_with_grad", lambda t: gathered.append(t.shape) or t)
    q, p = torch.eye(2), torch.eye(2)
    InfoNCELoss(negatives_x_device=True)(q, p)
    assert gathered == [(2, 2), (2, 2)]
    InfoNCELoss()(q, p)
    MaxStepSelfDistillationLoss()(q, p[:, None])
    assert len(gathered) == 2
    MaxStepSelfDistillationLoss(negatives_x_device=True)(q, p[:, None])
    assert gathered[2:] == [(2, 2), (2, 1, 2)]


# --- shapes where batch, group and dimension differ; one labelled token; a scale under 1 ---------------
def test_distillation_averages_over_queries_with_groups_of_another_size():
    """2 queries, groups of 3 passages, dimension 4: every axis has its own size."""
    q = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    p = torch.eye(4)[[0, 1, 2, 1, 2, 3]]
    teacher = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    got = DistillationLoss(0.5, 1.0)(q, p, teacher)
    student = torch.tensor([[2.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    t = torch.softmax(teacher, -1)
    expected = -(t * torch.log_softmax(student, -1)).sum(-1).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_max_step_accepts_a_scale_under_one():
    assert MaxStepSelfDistillationLoss(0.5).scale == 0.5


def test_one_labelled_token_is_its_own_mean():
    hidden, _, weight, _, _ = generation_batch()
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[1, 2] = 4
    expected = torch.nn.functional.cross_entropy(hidden[1, 1:2].detach() @ weight.T, torch.tensor([4]))
    for global_token_mean in (False, True):
        got = ThoughtGenerationLoss(global_token_mean=global_token_mean)(hidden.detach(), labels, Head(weight))
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_global_token_mean_multiplies_by_the_world_size(monkeypatch):
    """DDP averages the ranks' losses: each rank's sum times the world size over all ranks' tokens."""
    hidden, labels, weight, _, _ = generation_batch()
    monkeypatch.setattr(o1e_loss_module, "world_size", lambda: 2)
    monkeypatch.setattr(o1e_loss_module, "global_sum", lambda x: x * 3)  # the other ranks hold twice as many tokens
    token_sum, count = ThoughtGenerationLoss().token_sum(hidden.detach(), labels, Head(weight))
    got = ThoughtGenerationLoss(global_token_mean=True)(hidden.detach(), labels, Head(weight))
    assert got.item() == pytest.approx((token_sum * 2 / (3 * count)).item(), rel=1e-6)

