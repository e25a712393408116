"""Thinking queries: fused think-and-embed equals re-encoding, eq. 11, empty inputs, saved thoughts."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from o1e_pyserini.encoders.o1e import O1EInputError, O1EQueryEncoder, load_encoded_queries
from o1e_pyserini.search.faiss import read_encoded_queries_safely
from o1e_pyserini.thinking.backends import HFThoughts, NucleusSampler, OpenAIThoughts, ThoughtSettings, TokenizedThoughts
from o1e_tevatron.core.encoding import encode_sequences
from o1e_tevatron.families.o1e.model import O1EModel

QUERIES = ["0-dimensional biomaterials show inductive properties.", "dna", "what causes rodent genome amplification",
           "x"]
MAX_NEW = 10


@pytest.mark.parametrize("scale, temperature, top_p, full_sort", [
    (30.0, 0.1, 0.9, False),  # trained-like: the nucleus is decided among the candidates
    (3.0, 0.1, 0.9, False),
    (1.0, 1.0, 0.9, True),  # near-uniform: the nucleus is most of the vocabulary
    (2.0, 0.7, 1.0, True),
])
def test_nucleus_equals_hugging_face_temperature_and_top_p(scale, temperature, top_p, full_sort, monkeypatch):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    scores = torch.randn(48, 5000, generator=torch.Generator().manual_seed(0)) * scale
    expected = TemperatureLogitsWarper(temperature)(None, scores.clone())
    if top_p < 1:
        expected = TopPLogitsWarper(top_p)(None, expected)
    sorts = []
    real_sort = torch.Tensor.sort
    monkeypatch.setattr(torch.Tensor, "sort", lambda self, *a, **k: sorts.append(1) or real_sort(self, *a, **k))
    ids, probs = NucleusSampler(temperature, top_p).nucleus(scores.clone())
    assert bool(sorts) == full_sort
    dense = torch.zeros_like(scores).scatter_(1, ids, probs)
    torch.testing.assert_close(dense, expected.softmax(-1), atol=1e-6, rtol=1e-4)


def test_nucleus_sampler_draws_each_token_with_its_probability():
    scores = torch.tensor([[2.0, 1.0, 0.5, -1.0, -3.0], [0.0, 3.0, 2.9, -1.0, 0.0]]).repeat(10_000, 1)
    sampler = NucleusSampler(temperature=1.0, top_p=0.8, candidates=3)
    ids, probs = sampler.nucleus(scores[:2])
    expected = torch.zeros(2, 5).scatter_(1, ids, probs)
    assert expected[0].nonzero().flatten().tolist() == [0, 1] and expected[1].nonzero().flatten().tolist() == [1, 2]
    torch.manual_seed(0)
    tokens = sampler.sample(scores).view(-1, 2)
    for row in range(2):
        frequency = torch.bincount(tokens[:, row], minlength=5) / len(tokens)
        assert (frequency - expected[row]).abs().max() < 0.015  # 3 sigma at n = 10,000
    chosen = sampler(None, scores[:2].clone())  # as generate's last processor: the draw is the argmax
    assert torch.isinf(chosen).sum().item() == 2 and set(chosen.argmax(-1).tolist()) <= {0, 1, 2}


def eos_bias(model, bias):
    return {(model.template.eos_id,): bias}


def test_fused_embedding_equals_reencoding(o1e_checkpoint):
    """Same thought ids -> same vector, whether read from the KV cache or re-encoded (rows stop at
    different lengths, some right away, so pads of early stoppers are masked)."""
    model = O1EModel.load(o1e_checkpoint).eval()
    t = model.template
    settings = ThoughtSettings(num_thoughts=3, temperature=1.0, max_new_tokens=MAX_NEW, seed=0)
    thoughts, fused = HFThoughts(model, settings, sequence_bias=eos_bias(model, 3.0)).think_and_embed(QUERIES)

    lengths = {len(th) for ths in thoughts for th in ths}
    assert len(lengths) >= 3 and min(lengths) < MAX_NEW, f"want ragged stops, got lengths {lengths}"
    sequences = [t.thought_query(q, th)[0] for q, ths in zip(t.tokenize_batch(QUERIES), thoughts) for th in ths]
    reencoded = torch.from_numpy(encode_sequences(model, sequences, batch_size=5))
    torch.testing.assert_close(fused.reshape(len(sequences), -1), reencoded, atol=1e-5, rtol=0)

    # The check can fail: another query's thought-augmented vector is measurably different.
    assert F.cosine_similarity(fused[0, 0], reencoded[-1], dim=-1).item() < 0.9999


def test_think_mode_averages_normalised_thought_vectors(llama_checkpoint):
    kwargs = dict(num_thoughts=3, temperature=1.0, max_new_tokens=MAX_NEW, seed=7, batch_size=3,
                  generate_kwargs={"sequence_bias": {(2,): 2.0}})
    fused = O1EQueryEncoder(str(llama_checkpoint), **kwargs)
    reencode = O1EQueryEncoder(str(llama_checkpoint), fused=False, **kwargs)
    a, b = fused.encode_batch(QUERIES), reencode.encode_batch(QUERIES)
    assert a.shape == (len(QUERIES), fused.dimension) and a.dtype == np.float32
    assert fused.encoded.thoughts == reencode.encoded.thoughts  # same seed, same thoughts
    np.testing.assert_allclose(a, b, atol=1e-5)
    # eq. 11: the mean of the normalised (q, t_i) vectors, not renormalised (a renormalised mean has norm 1)
    t = fused.template
    replay = HFThoughts(fused.model, ThoughtSettings(3, 1.0, 0.9, MAX_NEW, seed=7), sequence_bias={(2,): 2.0})
    thought_ids = replay.think(QUERIES[:3]) + replay.think(QUERIES[3:])  # the encoder's two batches of 3
    sequences = [t.thought_query(q, th)[0] for q, ths in zip(t.tokenize_batch(QUERIES), thought_ids) for th in ths]
    per_thought = encode_sequences(fused.model, sequences, 4).reshape(len(QUERIES), 3, -1)
    unit = per_thought / np.linalg.norm(per_thought, axis=-1, keepdims=True)
    np.testing.assert_allclose(a, unit.mean(axis=1), atol=1e-5)
    assert np.linalg.norm(a, axis=1).min() < 0.999

    single = fused.encode(QUERIES[1])
    assert single.shape == (fused.dimension,) and single.dtype == np.float32

    fast = O1EQueryEncoder(str(llama_checkpoint), mode="fast")
    plain = fast.encode_batch(QUERIES)
    np.testing.assert_allclose(np.linalg.norm(plain, axis=1), 1, atol=1e-5)
    assert not np.allclose(plain, a, atol=1e-3)


def test_empty_queries_are_refused_by_id(llama_checkpoint):
    encoder = O1EQueryEncoder(str(llama_checkpoint), mode="fast")
    with pytest.raises(ValueError, match="empty"):
        encoder.encode("")
    with pytest.raises(ValueError, match="empty"):
        encoder.encode("  \t")
    with pytest.raises(O1EInputError, match="q2, q4"):
        encoder.encode_batch(["dna", " ", "rna", ""], ids=["q1", "q2", "q3", "q4"])


def test_empty_thoughts_are_embedded_and_counted(llama_checkpoint):
    encoder = O1EQueryEncoder(str(llama_checkpoint), num_thoughts=2, max_new_tokens=MAX_NEW,
                              generate_kwargs={"sequence_bias": {(2,): 100.0}})
    vectors = encoder.encode_batch(QUERIES[:2])
    assert encoder.empty_thoughts == 4
    t = encoder.template
    expected = encode_sequences(encoder.model, [t.thought_query(q, [])[0] for q in t.tokenize_batch(QUERIES[:2])], 2)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)  # k identical empty thoughts: their mean


def test_saved_queries_are_pyserini_encoded_queries(llama_checkpoint, tmp_path):
    from pyserini.encode import QueryEncoder

    encoder = O1EQueryEncoder(str(llama_checkpoint), num_thoughts=2, max_new_tokens=MAX_NEW, seed=1,
                              generate_kwargs={"sequence_bias": {(2,): 2.0}})
    vectors = encoder.encode_batch(QUERIES[:3], ids=["a", "b", "c"])
    encoder.encoded.save(tmp_path, {"dna": ["b"], QUERIES[0]: ["a"]})

    assert len(load_encoded_queries(tmp_path)) == 3
    read_encoded_queries_safely(allow_pickle=False)  # what o1e_pyserini.search.faiss does before Pyserini runs
    replay = QueryEncoder(str(tmp_path))
    np.testing.assert_array_equal(replay.encode("dna"), vectors[1])
    rows = [json.loads(line) for line in (tmp_path / "thoughts.jsonl").read_text().splitlines()]
    assert [r["query_id"] for r in rows] == ["a", "b", None]
    assert all(len(r["thoughts"]) == 2 for r in rows)

    recorded = O1EQueryEncoder(str(llama_checkpoint), thoughts="file", thoughts_file=str(tmp_path / "thoughts.jsonl"))
    again = recorded.encode_batch(QUERIES[:3])
    assert recorded.encoded.thoughts == encoder.encoded.thoughts
    assert again.shape == vectors.shape
    with pytest.raises(KeyError, match="no thoughts"):
        recorded.encode("never seen")


def test_separate_generator_over_openai_api(tiny_llama_dir, llama_checkpoint):
    """Table 4's baseline: thoughts from another LLM behind an OpenAI-compatible server."""
    from o1e_tevatron.synthesis.loopback_server import LoopbackServerArguments, serve_in_thread

    model = O1EModel.load(llama_checkpoint).eval()
    settings = ThoughtSettings(num_thoughts=2, temperature=1.0, max_new_tokens=8)
    with serve_in_thread(LoopbackServerArguments(model_name_or_path=str(tiny_llama_dir))) as url:
        source = OpenAIThoughts(url, "loopback", settings)
        thoughts = TokenizedThoughts(source, model.template, settings).think(QUERIES[:2])
    assert [len(ts) for ts in thoughts] == [2, 2]
    assert all(isinstance(i, int) for ts in thoughts for th in ts for i in th)


def test_vllm_backend_is_optional(llama_checkpoint):
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"o1e\[vllm\]"):
            O1EQueryEncoder(str(llama_checkpoint), thoughts="vllm")
    else:
        pytest.skip("vllm is installed: the backend itself is not exercised on CPU")


def test_nucleus_draw_at_the_rounding_edge_stays_in_the_nucleus(monkeypatch):
    """u = rand * total can round up to the total; the old clamp then took the last candidate, outside
    the nucleus (probability 0)."""
    scores = torch.tensor([[5.0, 4.0, -10.0, -11.0]])
    sampler = NucleusSampler(temperature=1.0, top_p=0.5, candidates=4)
    ids, probs = sampler.nucleus(scores)
    assert (probs > 0).sum().item() == 1
    monkeypatch.setattr(torch, "rand", lambda *shape, **kwargs: torch.ones(*shape))  # the edge: u == total
    assert sampler.sample(scores).item() == 0


def test_seeded_thoughts_leave_the_global_random_state_alone(llama_checkpoint):
    """The old code called torch.manual_seed(seed) for every batch: the caller's random state was reset,
    and every batch replayed the same draws. Now each query draws from its own generator, seeded by
    hash(seed, query): the same query gets the same thoughts in any batch, other queries others."""
    kwargs = dict(num_thoughts=2, temperature=1.0, max_new_tokens=MAX_NEW, seed=3, batch_size=1,
                  generate_kwargs={"sequence_bias": {(2,): 2.0}})
    encoder = O1EQueryEncoder(str(llama_checkpoint), **kwargs)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    encoder.encode_batch(["dna", "rna", "dna"])
    assert torch.equal(torch.rand(3), expected_next)
    first, other, second = encoder.encoded.thoughts
    assert first == second and first != other  # per query, not one stream over the batches
    again = O1EQueryEncoder(str(llama_checkpoint), **{**kwargs, "batch_size": 3})
    again.encode_batch(["rna", "dna", "dna"])
    assert again.encoded.thoughts == [other, first, first]  # the batch does not matter


def test_recorded_thoughts_with_different_counts_per_query(llama_checkpoint, tmp_path):
    """The old _reencode viewed the vectors as (B, k, d) with k of the first query."""
    path = tmp_path / "thoughts.jsonl"
    path.write_text(json.dumps({"text": "dna", "thoughts": ["repair"]}) + "\n"
                    + json.dumps({"text": "rna", "thoughts": ["splicing", "polymerase", "virus"]}) + "\n")
    encoder = O1EQueryEncoder(str(llama_checkpoint), thoughts="file", thoughts_file=str(path))
    vectors = encoder.encode_batch(["dna", "rna"])
    t = encoder.template
    for row, (query, thoughts) in enumerate((("dna", ["repair"]), ("rna", ["splicing", "polymerase", "virus"]))):
        q = t.tokenize_batch([query])[0]
        each = encode_sequences(encoder.model, [t.thought_query(q, t.strip_thought(th))[0]
                                                for th in t.tokenize_batch(thoughts)], 3)
        expected = (each / np.linalg.norm(each, axis=1, keepdims=True)).mean(axis=0)
        np.testing.assert_allclose(vectors[row], expected, atol=1e-5)


def test_plain_query_vector_comes_free_from_the_prefill(llama_checkpoint):
    """Think mode's prefill gives fast mode's vector (one more token, <emb>) and the entropy at <thought>."""
    model = O1EModel.load(llama_checkpoint).eval()
    t = model.template
    settings = ThoughtSettings(num_thoughts=2, temperature=1.0, max_new_tokens=MAX_NEW, seed=3)
    thinking = HFThoughts(model, settings).think_embed_and_plain(QUERIES)
    fast_reference = encode_sequences(model, [t.plain_query(q) for q in t.tokenize_batch(QUERIES)], 1, query=True)
    np.testing.assert_allclose(thinking.plain_vectors.numpy(), fast_reference, atol=1e-5, rtol=0)
    fast = O1EQueryEncoder(str(llama_checkpoint), mode="fast", batch_size=3)
    np.testing.assert_allclose(fast.encode_batch(QUERIES), fast_reference, atol=1e-5, rtol=0)
    # the entropy of the next token after <thought>, from the full model's logits of the prompt alone
    with torch.inference_mode():
        for i, q in enumerate(t.tokenize_batch(QUERIES)):
            logits = model.causal_lm(torch.tensor([t.query_prefix(q)])).logits[0, -1].double()
            expected = -(logits.softmax(-1) * logits.log_softmax(-1)).sum().item()
            assert abs(thinking.entropy[i].item() - expected) < 1e-4
            assert abs(fast.encoded.entropy[i] - expected) < 1e-4
    # the prefill did not disturb generation: same seed, same thoughts as think() (a separate replay)
    assert thinking.thoughts == HFThoughts(model, settings).think(QUERIES)
    assert thinking.generated_tokens == [sum(min(len(th) + 1, MAX_NEW) for th in ths) for ths in thinking.thoughts]


@pytest.mark.parametrize("query_vector, renormalize", [("thoughts", True), ("thoughts+query", False),
                                                       ("thoughts+query", True)])
def test_query_vector_options_against_a_literal_mean(llama_checkpoint, query_vector, renormalize):
    kwargs = dict(num_thoughts=3, temperature=1.0, max_new_tokens=MAX_NEW, seed=11, batch_size=4)
    encoder = O1EQueryEncoder(str(llama_checkpoint), query_vector=query_vector, renormalize=renormalize, **kwargs)
    got = encoder.encode_batch(QUERIES)
    t = encoder.template
    thought_ids = HFThoughts(encoder.model, ThoughtSettings(3, 1.0, 0.9, MAX_NEW, seed=11)).think(QUERIES)
    sequences = [t.thought_query(q, th)[0] for q, ths in zip(t.tokenize_batch(QUERIES), thought_ids) for th in ths]
    members = encode_sequences(encoder.model, sequences, 4, query=True).reshape(len(QUERIES), 3, -1)
    members = members / np.linalg.norm(members, axis=-1, keepdims=True)
    if query_vector == "thoughts+query":
        plain = encode_sequences(encoder.model, [t.plain_query(q) for q in t.tokenize_batch(QUERIES)], 4, query=True)
        members = np.concatenate([members, plain[:, None] / np.linalg.norm(plain, axis=-1)[:, None, None]], axis=1)
    expected = members.mean(axis=1)
    if renormalize:
        expected = expected / np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    default = O1EQueryEncoder(str(llama_checkpoint), **kwargs).encode_batch(QUERIES)
    assert not np.allclose(got, default, atol=1e-3)  # each option changes the vector


def test_thoughts_never_contain_the_layout_markers(o1e_checkpoint):
    """The added rows are tied to the LM head on many models and can win the softmax; a thought must not
    be made of <query> / </query> / <thought> / <emb> (or bos) whatever the model prefers."""
    model = O1EModel.load(o1e_checkpoint).eval()
    t = model.template
    favoured = {(i,): 50.0 for i in t.not_in_thoughts}  # the model would pick nothing else
    settings = ThoughtSettings(num_thoughts=2, temperature=1.0, max_new_tokens=MAX_NEW, seed=0)
    thoughts, _ = HFThoughts(model, settings, sequence_bias=favoured).think_and_embed(QUERIES[:2])
    generated = [i for ths in thoughts for th in ths for i in th]
    assert generated and not set(generated) & set(t.not_in_thoughts)
