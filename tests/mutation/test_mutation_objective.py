"""The objective checked by value (issue 24's mutation campaign): literal weights, the world-size scale
of gathered parts only, parts without a weight refused, weight-0 and absent parts left out."""
import pytest
import torch

from o1e_tevatron import objective as objective_module
from o1e_tevatron.objective import Objective


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_the_loss_is_the_weighted_sum_of_the_parts_present():
    objective = Objective({"a": 0.25, "b": 2.0, "c": 0.5})
    assert objective({"a": t(4.0), "b": t(3.0), "c": t(10.0)}).item() == 1.0 + 6.0 + 5.0
    assert objective({"b": t(3.0)}).item() == 6.0
    assert objective({"a": t(4.0), "c": t(10.0)}).item() == 6.0


def test_a_part_of_weight_zero_is_left_out_even_when_it_is_not_finite():
    objective = Objective({"a": 1.0, "b": 0.0})
    assert objective({"a": t(2.0), "b": t(float("nan"))}).item() == 2.0


def test_no_weighted_part_gives_a_zero_connected_to_the_graph():
    x = torch.tensor(3.0, requires_grad=True)
    loss = Objective({"a": 0.0, "b": 1.0})({"a": x * 2})
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert x.grad.item() == 0.0


def test_gathered_parts_are_scaled_by_the_world_size_and_the_others_are_not(monkeypatch):
    monkeypatch.setattr(objective_module, "world_size", lambda: 4)
    objective = Objective({"ctr": 0.5, "gen": 0.25}, gathered={"ctr"})
    assert objective.scale("ctr") == 2.0 and objective.scale("gen") == 0.25
    assert objective({"ctr": t(1.0), "gen": t(4.0)}).item() == 3.0
    assert Objective({"ctr": 0.5}).scale("ctr") == 0.5


def test_on_one_process_a_gathered_part_has_its_weight():
    assert Objective({"ctr": 0.5}, gathered={"ctr"}).scale("ctr") == 0.5


def test_the_weights_and_gathered_parts_are_copies(monkeypatch):
    weights, gathered = {"a": 1.0}, {"a"}
    objective = Objective(weights, gathered)
    weights["a"], weights["b"] = 5.0, 1.0
    gathered.clear()
    assert objective.weights == {"a": 1.0} and objective.gathered == frozenset({"a"})
    assert isinstance(objective.gathered, frozenset)


def test_gathered_parts_without_a_weight_are_refused_by_name():
    with pytest.raises(ValueError, match=r"^gathered parts \['x', 'y'\] have no weight$"):
        Objective({"a": 1.0}, gathered={"y", "a", "x"})
    Objective({"a": 1.0}, gathered={"a"})
    Objective({"a": 1.0})


def test_parts_without_a_weight_are_refused_by_name():
    with pytest.raises(ValueError, match=r"^loss parts \['x', 'z'\] have no weight in the objective$"):
        Objective({"a": 1.0})({"a": t(1.0), "z": t(1.0), "x": t(1.0)})


def test_the_sum_keeps_every_term_in_order_and_in_the_graph():
    a, b, c = (torch.tensor(v, requires_grad=True) for v in (1.0, 2.0, 3.0))
    loss = Objective({"a": 1.0, "b": 10.0, "c": 100.0})({"c": c, "a": a, "b": b})
    assert loss.item() == 321.0
    loss.backward()
    assert (a.grad.item(), b.grad.item(), c.grad.item()) == (1.0, 10.0, 100.0)
