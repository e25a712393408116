"""DEBATER's model checked by value (issue 24's mutation campaign): negatives_x_device (off by default)
gathers both loss parts and scales them by the world size, and the pooling errors in full. No backbone
runs here: pooling and the loss parts need only the template."""
import re
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoTokenizer

from o1e_tevatron import loss as loss_module
from o1e_tevatron import objective as objective_module
from o1e_tevatron.families.debater.loss import MaxStepSelfDistillationLoss
from o1e_tevatron.families.debater.model import DebaterConfig, DebaterModel
from o1e_tevatron.families.o1e.template import add_special_tokens

CONFIG = DebaterConfig(num_steps=2, scale=7.0)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    add_special_tokens(tok, tokens=CONFIG.tokens())
    return tok


def model(tokenizer, **kwargs):
    return DebaterModel(SimpleNamespace(config=None), tokenizer, CONFIG, **kwargs)


def unit(*shape, seed):
    return torch.nn.functional.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def other_rank(x):
    """What a second rank would add to the gathered batch (this process's vectors, reversed and negated)."""
    return torch.cat([x, -x.flip(0)])


def test_negatives_x_device_is_off_by_default_and_gathers_both_parts_when_on(tokenizer, monkeypatch):
    monkeypatch.setattr(loss_module, "gather_with_grad", other_rank)
    monkeypatch.setattr(objective_module, "world_size", lambda: 4)
    q, p = unit(2, 5, seed=0), unit(4, 2, 5, seed=1)
    local = MaxStepSelfDistillationLoss(7.0)(q, p)
    gathered = MaxStepSelfDistillationLoss(7.0)(other_rank(q), other_rank(p))
    assert not torch.allclose(local["ce_loss"], gathered["ce_loss"])
    plain, crossed = model(tokenizer), model(tokenizer, negatives_x_device=True)
    for name in ("ce_loss", "distill_loss"):
        assert torch.equal(plain.vector_loss_parts(q, p)[name], local[name])
        assert torch.equal(crossed.vector_loss_parts(q, p)[name], gathered[name])
        assert plain.objective.scale(name) == 0.5 and crossed.objective.scale(name) == 2.0
    assert plain.loss.scale == crossed.loss.scale == 7.0


def test_pooling_errors_in_full(tokenizer):
    m = model(tokenizer)
    hidden, mask = torch.randn(1, 4, 3), torch.ones(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="^" + re.escape("a query does not end with its query token (</s>): build "
                                                         "inputs with DebaterTemplate.plain_query") + "$"):
        m.pool_query(hidden, torch.tensor([[5, 6, 7, 8]]), mask)
    with pytest.raises(ValueError, match="^" + re.escape("a passage does not end with the step tokens: build inputs "
                                                         "with DebaterTemplate.passage") + "$"):
        m.pool_passage(hidden, torch.tensor([[5, 6, 7, 8]]), mask)
    # the same rows, built by the template, pool at the last token and at the two step tokens
    query = torch.tensor([m.template.plain_query([5, 6])])
    assert torch.equal(m.pool_query(hidden, query, mask),
                       torch.nn.functional.normalize(hidden[:, 3], dim=-1))
    passage = torch.tensor([[5, 6] + m.template.step_ids])
    assert torch.equal(m.pool_passage(hidden, passage, mask), torch.nn.functional.normalize(hidden[:, 2:], dim=-1))
