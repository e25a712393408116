"""The nucleus sampler and eq. 11 averaging checked by value (issue 24's mutation campaign): literal
logits whose nucleus and probabilities are known exactly, draws at the edges of the inverse CDF, the
generators' groups, and the averaged query vector by hand."""
import math

import pytest
import torch

from o1e_pyserini.thinking.backends import NucleusSampler, average_thought_vectors


# --- the sampler -------------------------------------------------------------------------------
def test_defaults_and_refusals():
    sampler = NucleusSampler(0.5, 1.0)
    assert (sampler.temperature, sampler.top_p, sampler.candidates, sampler.generators) == (0.5, 1.0, 64, None)
    for temperature, top_p in ((0.0, 0.9), (-1.0, 0.9), (0.1, 0.0), (0.1, 1.01), (0.1, -0.5)):
        with pytest.raises(ValueError, match=rf"^need temperature > 0 and 0 < top_p <= 1, got {temperature}, {top_p}$"):
            NucleusSampler(temperature, top_p)


def test_weights_are_exp_of_logits_over_temperature_relative_to_the_best():
    weights = NucleusSampler(0.5, 0.9)._weights(torch.tensor([[3.0, 2.0, 1.0]], dtype=torch.bfloat16))
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights, torch.tensor([[1.0, math.exp(-2), math.exp(-4)]]))


@pytest.mark.parametrize("candidates", [2, 64])  # the candidates' shortcut, and the full sort
def test_a_token_whose_mass_above_equals_top_p_is_outside(candidates):
    scores = torch.tensor([[0.0, -100.0, 0.0, -100.0]])  # two tokens of weight 1, the rest ~0
    ids, probs = NucleusSampler(1.0, 0.5, candidates=candidates).nucleus(scores)
    assert ids[0, 0].item() in (0, 2) and probs[0].tolist()[:2] == [1.0, 0.0]
    ids, probs = NucleusSampler(1.0, 0.51, candidates=candidates).nucleus(scores)
    assert sorted(ids[0, :2].tolist()) == [0, 2] and probs[0].tolist()[:2] == [0.5, 0.5]


def test_nucleus_probabilities_by_hand_on_the_full_sort():
    scores = torch.tensor([[math.log(4.0), math.log(2.0), 0.0, math.log(0.5)], [0.0, 0.0, 0.0, 0.0]])
    ids, probs = NucleusSampler(1.0, 0.7, candidates=4).nucleus(scores)  # 4, 2, 1, .5 of 7.5: 4 and 2 (6 > 5.25)
    assert ids[0].tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(probs[0], torch.tensor([4 / 6, 2 / 6, 0.0, 0.0]))
    torch.testing.assert_close(probs[1], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]))  # above: 0 1 2 3 < 2.8


def test_the_candidates_shortcut_is_taken_only_when_the_bound_decides(monkeypatch):
    sorts = []
    real_sort = torch.Tensor.sort
    monkeypatch.setattr(torch.Tensor, "sort", lambda self, *a, **k: sorts.append(1) or real_sort(self, *a, **k))
    # three candidates (weights 1, 1, e^-10) and two tokens of e^-10: the others cannot reach the top_p
    peaked = torch.tensor([[0.0, 0.0, -10.0, -10.0, -10.0]])
    ids, probs = NucleusSampler(1.0, 0.9, candidates=3).nucleus(peaked)
    assert sorts == [] and ids.shape == (1, 3)
    torch.testing.assert_close(probs, torch.tensor([[0.5, 0.5, 0.0]]))
    # other tokens as heavy as the last candidate: the bound cannot decide, so the full sort does
    flat = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0]])
    ids, probs = NucleusSampler(1.0, 0.5, candidates=2).nucleus(flat)  # 0.5 * 5 = 2.5: three tokens inside
    assert sorts == [1] and ids.shape == (1, 5)
    assert sorted(probs[0].tolist(), reverse=True) == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0.0, 0.0])
    # the nucleus holds every candidate: the tokens after them might belong too, so the full sort does
    ids, probs = NucleusSampler(1.0, 0.99, candidates=2).nucleus(torch.tensor([[0.0, 0.0, -3.0, -30.0, -30.0]]))
    assert sorts == [1, 1] and ids.shape == (1, 5)
    w = math.exp(-3)
    torch.testing.assert_close(probs, torch.tensor([[1 / (2 + w), 1 / (2 + w), w / (2 + w), 0.0, 0.0]]))


def test_the_upper_bound_counts_every_token_outside_the_candidates(monkeypatch):
    """least = 2.0 (two candidates of weight 1, the second of them last); with the 3 other tokens at
    most 1 each, most = 5.0. top_p 0.3: inside for least (0 < 0.6; 1 < 0.6 no) and most (1 < 1.5 yes)
    disagree on the second candidate, so the full sort decides (its three others weigh e^-1)."""
    scores = torch.tensor([[0.0, 0.0, -1.0, -1.0, -1.0]])
    ids, probs = NucleusSampler(1.0, 0.3, candidates=2).nucleus(scores)
    total = 2 + 3 * math.exp(-1)  # 0.3 * total = 0.93: only the first token (above 0), not the second (above 1)
    assert ids.shape == (1, 5) and probs[0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0] and 0.3 * total < 1


def fixed(sampler, probs, u):
    sampler.nucleus = lambda scores: (torch.tensor([[10, 11, 12, 13]]), torch.tensor([probs]))
    sampler._uniform = lambda rows, device: torch.tensor([[u]])
    return sampler.sample(torch.zeros(1, 20)).item()


@pytest.mark.parametrize("u, token", [(0.0, 10), (0.49, 10), (0.5, 11), (0.74, 11), (0.75, 12), (0.99, 12), (1.0, 12)])
def test_the_draw_inverts_the_cdf_and_never_leaves_the_nucleus(u, token):
    assert fixed(NucleusSampler(1.0, 0.9), [0.5, 0.25, 0.25, 0.0], u) == token


def test_the_draw_is_scaled_by_the_total_mass():
    # probabilities that sum to 0.5 (rounding, exaggerated): cdf .25 .3125 .5; u is a share of the total
    assert fixed(NucleusSampler(1.0, 0.9), [0.25, 0.0625, 0.1875, 0.0], 0.4) == 10
    assert fixed(NucleusSampler(1.0, 0.9), [0.25, 0.0625, 0.1875, 0.0], 0.55) == 11
    assert fixed(NucleusSampler(1.0, 0.9), [0.25, 0.0625, 0.1875, 0.0], 0.7) == 12


def test_each_generator_draws_for_its_own_group_of_rows():
    sampler = NucleusSampler(1.0, 0.9, generators=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    u = sampler._uniform(6, torch.device("cpu"))
    expected = torch.cat([torch.rand(3, 1, generator=torch.Generator().manual_seed(s)) for s in (1, 2)])
    assert u.shape == (6, 1) and torch.equal(u, expected)


def test_without_generators_the_draws_come_from_the_global_generator():
    torch.manual_seed(5)
    u = NucleusSampler(1.0, 0.9)._uniform(4, torch.device("cpu"))
    torch.manual_seed(5)
    assert torch.equal(u, torch.rand(4, 1))
    assert NucleusSampler(1.0, 0.9, generators=[])._uniform(2, torch.device("cpu")).shape == (2, 1)


def test_as_a_logits_processor_it_gives_the_drawn_token_the_only_infinite_score():
    sampler = NucleusSampler(1.0, 0.9)
    sampler.sample = lambda scores: torch.tensor([[2], [0]])
    scores = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = sampler(None, scores)
    assert out is scores  # generate passes its own copy: changed in place
    assert out.tolist() == [[1.0, 2.0, math.inf], [math.inf, 5.0, 6.0]]


def test_seeded_draws_are_reproducible_and_follow_the_nucleus():
    scores = torch.tensor([[0.0, 0.0, -50.0, -50.0]]).repeat(4, 1)
    draws = [NucleusSampler(1.0, 0.9, candidates=2, generators=[torch.Generator().manual_seed(9)] * 2).sample(scores)
             for _ in range(2)]
    assert torch.equal(draws[0], draws[1]) and set(draws[0].flatten().tolist()) <= {0, 1}


# --- eq. 11 ------------------------------------------------------------------------------------
def test_the_query_vector_is_the_mean_of_the_unit_thought_vectors_not_renormalised():
    vectors = torch.tensor([[[3.0, 4.0], [0.0, 2.0]], [[1.0, 0.0], [-1.0, 0.0]]])
    means = average_thought_vectors(vectors)
    torch.testing.assert_close(means, torch.tensor([[0.3, 0.9], [0.0, 0.0]]))


def test_the_plain_query_vector_joins_as_one_more_unit_member():
    vectors = torch.tensor([[[3.0, 4.0], [0.0, 2.0]], [[1.0, 0.0], [1.0, 0.0]]])
    plain = torch.tensor([[10.0, 0.0], [0.0, -5.0]])
    means = average_thought_vectors(vectors, plain=plain)
    torch.testing.assert_close(means, torch.tensor([[1.6 / 3, 1.8 / 3], [2 / 3, -1 / 3]]))


def test_renormalised_means_have_unit_length():
    vectors = torch.tensor([[[3.0, 4.0], [0.0, 2.0]]])
    means = average_thought_vectors(vectors, renormalize=True)
    torch.testing.assert_close(means, torch.tensor([[0.3, 0.9]]) / math.sqrt(0.9))
    assert average_thought_vectors(vectors, renormalize=False).norm().item() == pytest.approx(math.sqrt(0.9))


def test_queries_with_different_numbers_of_thoughts_average_their_own():
    vectors = [torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, -3.0]])]
    means = average_thought_vectors(vectors, plain=torch.tensor([[0.0, 2.0], [5.0, 0.0]]))
    torch.testing.assert_close(means, torch.tensor([[0.5, 0.5], [0.5, 0.0]]))


def test_half_precision_thought_vectors_are_averaged_in_float32():
    vectors = torch.tensor([[[3.0, 4.0], [0.0, 2.0]]], dtype=torch.bfloat16)
    means = average_thought_vectors(vectors, plain=torch.tensor([[1.0, 0.0]], dtype=torch.bfloat16))
    assert means.dtype == torch.float32
    torch.testing.assert_close(means, torch.tensor([[1.6 / 3, 1.8 / 3]]))


# --- the sampler: the candidates' bound, rows drawn apart, the device of the draws ---------------------
def test_the_shortcut_is_not_taken_when_the_rest_of_the_vocabulary_could_join_the_nucleus():
    """weights 1, .5 among 2 candidates and .4 outside: with the outside token counted the mass above the second
    candidate (1) is under top_p (.6) of the total (1.9), so the nucleus holds two tokens, as the full sort says."""
    scores = torch.tensor([[0.0, math.log(0.5), math.log(0.4)]])
    ids, probs = NucleusSampler(1.0, 0.6, candidates=2).nucleus(scores)
    assert ids.tolist() == [[0, 1, 2]]
    torch.testing.assert_close(probs, torch.tensor([[1 / 1.5, 0.5 / 1.5, 0.0]]))


def test_the_shortcut_is_taken_when_the_bound_decides():
    """weights 1, .01 and .01 outside, top_p .95: the bound (1.02) keeps the second candidate out either way,
    so the nucleus comes from the 2 candidates alone (2 columns, no full sort)."""
    scores = torch.tensor([[0.0, math.log(0.01), math.log(0.01) - 1e-3]])
    ids, probs = NucleusSampler(1.0, 0.95, candidates=2).nucleus(scores)
    assert ids.tolist() == [[0, 1]] and probs.tolist() == [[1.0, 0.0]]


def test_rows_are_clamped_to_their_own_nucleus_when_the_draw_rounds_up_to_the_total():
    sampler = NucleusSampler(1.0, 0.9)
    sampler.nucleus = lambda scores: (torch.tensor([[10, 11, 12], [20, 21, 22]]),
                                      torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]]))
    sampler._uniform = lambda rows, device: torch.ones(rows, 1)
    assert sampler.sample(torch.zeros(2, 30)).tolist() == [[10], [21]]


@pytest.mark.parametrize("generators", [None, "two"])
def test_the_uniform_draws_are_made_on_the_device_asked_for(generators):
    """On the scores' device (a GPU at search time; the meta device stands in for it here)."""
    generators = generators and [torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)]
    sampler = NucleusSampler(1.0, 0.9, generators=generators)
    assert sampler._uniform(2, torch.device("meta")).device.type == "meta"


def test_the_draw_is_made_on_the_nucleus_device():
    sampler = NucleusSampler(1.0, 0.9)
    sampler.nucleus = lambda scores: (torch.zeros(1, 3, dtype=torch.long, device="meta"),
                                      torch.ones(1, 3, device="meta"))
    seen = []
    sampler._uniform = lambda rows, device: seen.append(device) or torch.zeros(rows, 1, device=device)
    assert sampler.sample(torch.zeros(1, 30)).device.type == "meta" and seen == [torch.device("meta")]
