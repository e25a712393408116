"""generate against a real HTTP server on loopback: prompts, formats, retries, failures, resume."""
import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections import Counter

import pytest

from o1e_tevatron.synthesis.generate import generate, pick_examples, row_seed
from o1e_tevatron.families.o1e.prompts import SYSTEM_PROMPT, TeacherPrompt
from o1e_tevatron.synthesis.rows import iter_rows
from .helpers import DEMO_TRAIN, demo_rows, generate_args, generate_cli, read_jsonl, run_until_complete, write_jsonl

ALL_IDS = [r["query_id"] for r in demo_rows()]


def list_rows(path, **kwargs):
    return list(iter_rows(path, **kwargs))


def test_examples_are_random_training_pairs_never_the_rows_own_positive():
    rows = list(iter_rows(DEMO_TRAIN))
    pool = [(r.query, r.positives[0]) for r in rows]
    for row in rows:
        examples = pick_examples(pool, row, m=3, seed=0, max_chars=10_000)
        assert len({q for q, _ in examples}) == 3
        assert not set(row.positives) & {d for _, d in examples}
        assert examples == pick_examples(pool, row, m=3, seed=0, max_chars=10_000)  # stable across restarts
    prompt = TeacherPrompt().user(rows[0].query, pick_examples(pool, rows[0], 3, 0, 10_000))
    assert prompt.startswith("Task: \nThink about a plausible response to address the query.\n\nExamples: \nQuery: ")
    assert prompt.endswith(f"Query: \n{rows[0].query}\nResponse: ")
    assert prompt.count("Response: ") == 4
    assert "Don't repeat the query, just give the response." in SYSTEM_PROMPT


def test_prompt_override_file(tmp_path):
    good = tmp_path / "prompt.json"
    good.write_text(json.dumps({"task": "Write a passage that answers the given query."}))
    assert TeacherPrompt.from_file(good).user("q", [("a", "b")]).startswith("Task: \nWrite a passage")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"user_template": "{task} {nope}"}))
    with pytest.raises(ValueError, match="bad.json"):
        TeacherPrompt.from_file(bad)
    with pytest.raises(ValueError, match="bad.json.*keys"):
        bad.write_text(json.dumps({"sytem": "typo"}))
        TeacherPrompt.from_file(bad)


def test_input_formats_and_errors(tmp_path, demo_dir):
    tevatron = list_rows(DEMO_TRAIN)
    authors = write_jsonl(tmp_path / "authors.jsonl", [
        {"query": r["query"], "pos": [p["text"] for p in r["positive_passages"]],
         "neg": [p["text"] for p in r["negative_passages"]]} for r in demo_rows(5)])
    assert [r.query for r in list_rows(authors)] == [r.query for r in tevatron[:5]]
    assert all(r.row_id.startswith("sha1:") for r in list_rows(authors))
    beir = list_rows(demo_dir, qrels_split="test")
    assert beir and all(r.record["positive_passages"] and r.record["negative_passages"] == [] for r in beir)
    with pytest.raises(FileNotFoundError, match="qrels/train.tsv"):
        list_rows(demo_dir)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(DEMO_TRAIN.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(ValueError, match="broken.jsonl:2"):
        list_rows(broken)
    duplicated = write_jsonl(tmp_path / "dup.jsonl", demo_rows(2) + demo_rows(1))
    with pytest.raises(ValueError, match="dup.jsonl:3.*repeats.*dup.jsonl:1"):
        list_rows(duplicated)


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_generate_writes_k_candidates_per_row(tmp_path, loopback_teacher, endpoint):
    rows = write_jsonl(tmp_path / "train.jsonl", demo_rows(12))
    args = generate_args(rows, tmp_path / "out.jsonl", loopback_teacher, endpoint=endpoint, num_candidates=3)
    first, *_ = run_until_complete(args)
    assert first.written + first.failed == 12 and first.rows_per_second > 0
    out = read_jsonl(args.output_path)
    assert sorted(r["query_id"] for r in out) == sorted(ALL_IDS[:12])
    assert all(len(r["thought_candidates"]) == 3 and all(t.strip() for t in r["thought_candidates"]) for r in out)
    assert out[0]["positive_passages"] and "negative_passages" in out[0]  # the input row is kept


def test_a_server_that_ignores_n_is_asked_again_for_the_rest(tmp_path, serve_teacher):
    url = serve_teacher(ignore_n=True)  # like `transformers serve`: one choice per request
    rows = write_jsonl(tmp_path / "train.jsonl", demo_rows(4))
    args = generate_args(rows, tmp_path / "out.jsonl", url, num_candidates=3, max_tokens=8)
    summary = asyncio.run(generate(args))
    assert summary.written == 4 and summary.failed == 0
    assert all(len(r["thought_candidates"]) == 3 for r in read_jsonl(args.output_path))
    stats = json.load(urllib.request.urlopen(url.removesuffix("/v1") + "/loopback/stats"))
    assert stats["requests"] == 12  # k requests per row
    # each row has its seed (for servers that honour one, vLLM), moved on for each re-ask
    seeds = sorted(r["seed"] for r in json.load(urllib.request.urlopen(url.removesuffix("/v1") + "/loopback/sampling")))
    firsts = sorted(row_seed(args.seed, row_id) for row_id in ALL_IDS[:4])
    assert seeds == sorted(s + i for s in firsts for i in range(3)) and len(set(seeds)) == 12


def test_transient_faults_are_retried_and_bad_answers_recorded(tmp_path, serve_teacher):
    # Served in order: row 1 gets 500, 429, a hang past the 3 s client timeout, then malformed JSON (recorded,
    # no more retries); row 2 gets a response with empty texts (recorded); the other rows are served normally
    # (on a loaded machine one may still time out and be retried, hence ">=").
    url = serve_teacher(faults="500,429,timeout,malformed,empty", fault_delay_s=8.0)
    rows = write_jsonl(tmp_path / "train.jsonl", demo_rows(6))
    args = generate_args(rows, tmp_path / "out.jsonl", url, concurrency=1, request_timeout=3.0, max_tokens=8)
    summary = asyncio.run(generate(args))
    assert summary.retries >= 3
    failures = read_jsonl(args.failures_path)
    by_row = {f["row_id"]: f["error"] for f in failures}
    assert "MalformedResponse: unparsable" in by_row[ALL_IDS[0]]
    assert "MalformedResponse: expected 3 non-empty" in by_row[ALL_IDS[1]]
    assert all(f["source"].endswith(f"train.jsonl:{ALL_IDS.index(f['row_id']) + 1}") for f in failures)
    written = {r["query_id"] for r in read_jsonl(args.output_path)}
    assert not written & {ALL_IDS[0], ALL_IDS[1]}  # never written as thoughts
    stats = json.load(urllib.request.urlopen(url.removesuffix("/v1") + "/loopback/stats"))
    assert {k: stats[k] for k in stats if k.startswith("fault_")} == {
        "fault_500": 1, "fault_429": 1, "fault_timeout": 1, "fault_malformed": 1, "fault_empty": 1}
    run_until_complete(args)  # the next runs retry the recorded rows
    assert Counter(r["query_id"] for r in read_jsonl(args.output_path)) == Counter(ALL_IDS[:6])
    assert read_jsonl(args.failures_path) == []


def test_sigkill_mid_run_then_resume_has_every_row_exactly_once(tmp_path, serve_teacher):
    url = serve_teacher(latency_s=0.1)
    args = generate_args(DEMO_TRAIN, tmp_path / "out.jsonl", url, concurrency=2)
    env = {**os.environ, "OPENAI_API_KEY": "sk-loopback-secret"}
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(generate_cli(args), stdout=log, stderr=subprocess.STDOUT, env=env)
    out = tmp_path / "out.jsonl"
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_text().count("\n") >= 10):
        assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_at_kill = out.read_text().count("\n")
    assert 10 <= done_at_kill < len(ALL_IDS)
    with open(out, "a") as f:  # what a kill in the middle of a write leaves behind
        f.write('{"query_id": "' + ALL_IDS[-1] + '", "query": "torn')
    resumed = []
    while not resumed or resumed[-1].returncode == 3 and len(resumed) < 3:  # 3: some rows failed, rerun
        resumed.append(subprocess.run(generate_cli(args), capture_output=True, text=True, env=env, timeout=300))
        assert resumed[-1].returncode in (0, 3), resumed[-1].stderr[-3000:]
    assert "dropping a torn last line" in resumed[0].stderr
    assert json.loads(resumed[0].stdout.splitlines()[-1])["already_done"] == done_at_kill
    assert Counter(r["query_id"] for r in read_jsonl(out)) == Counter(ALL_IDS)
    logs = (tmp_path / "first.log").read_text() + "".join(r.stdout + r.stderr for r in resumed)
    assert "sk-loopback-secret" not in logs


def test_loopback_teacher_batches_concurrent_requests_like_single_ones(tiny_llama_dir, serve_teacher):
    """Requests that arrive together are generated in one left-padded batch, with the answers each
    would get alone (greedy, so comparable token for token)."""
    import openai

    from o1e_tevatron.synthesis.loopback_server import LoopbackServerArguments, LocalTeacher

    prompts = ["Query: dna repair\nResponse:", "Query: what causes rodent genome amplification in mice\nResponse:",
               "Query: x\nResponse:", "Query: statins and dementia risk in older adults\nResponse:"]
    url = serve_teacher(batch_wait_s=0.5)
    client = openai.AsyncOpenAI(base_url=url, api_key="x")

    async def ask_all():
        return await asyncio.gather(*[client.completions.create(model="loopback", prompt=p, n=2, max_tokens=6,
                                                                temperature=0) for p in prompts])
    answers = asyncio.run(ask_all())
    stats = json.load(urllib.request.urlopen(url.removesuffix("/v1") + "/loopback/stats"))
    assert stats["requests"] == 4 and stats["batches"] < 4
    alone = LocalTeacher(LoopbackServerArguments(model_name_or_path=str(tiny_llama_dir)))
    for prompt, answer in zip(prompts, answers):
        expected = alone.sample([prompt], 1, 6, 0.0, 1.0)[0][0][0]
        assert expected and [c.text for c in answer.choices] == [expected] * 2


def test_loopback_teacher_loads_in_the_dtype_asked(tiny_llama_dir):
    """--dtype bfloat16 (the miniature's CPU teacher) loads the weights in it; an unknown dtype is refused."""
    import torch

    from o1e_tevatron.synthesis.loopback_server import LoopbackServerArguments, LocalTeacher

    teacher = LocalTeacher(LoopbackServerArguments(model_name_or_path=str(tiny_llama_dir), dtype="bfloat16"))
    assert next(teacher.model.parameters()).dtype == torch.bfloat16
    assert teacher.sample(["Query: dna repair\nResponse:"], 2, 4, 0.0, 1.0)[0][0][2] > 0
    with pytest.raises(ValueError, match="--dtype must be"):
        LoopbackServerArguments(model_name_or_path=str(tiny_llama_dir), dtype="int8")


def test_grounded_generation_shows_the_rows_passages_cut_and_needs_them(tmp_path, loopback_teacher):
    from o1e_tevatron.synthesis.generate import grounding_of

    passages = ["alpha beta gamma delta", "one two three four", "never shown"]
    rows = write_jsonl(tmp_path / "train.jsonl", [{**r, "grounding": passages} for r in demo_rows(4)])
    args = generate_args(rows, tmp_path / "out.jsonl", loopback_teacher, num_candidates=2, grounding_passages=2,
                         grounding_max_words=3)
    row = list_rows(rows)[0]
    assert grounding_of(row, args) == ["alpha beta gamma", "one two three"]
    user = TeacherPrompt().chat_messages(row.query, [("q", "d")], grounding_of(row, args))[1]["content"]
    assert "Passages retrieved for the query: \n[1] alpha beta gamma\n[2] one two three\n\nQuery: \n" in user
    assert user.index("Examples:") < user.index("[1] alpha") < user.index(row.query)
    first, *_ = run_until_complete(args)
    assert first.written + first.failed == 4
    assert all(r["grounding"] == passages for r in read_jsonl(args.output_path))  # the row is kept whole
    bare = write_jsonl(tmp_path / "bare.jsonl", demo_rows(2))
    with pytest.raises(ValueError, match=r"bare.jsonl:1: --grounding_passages 2 but the row has no 'grounding'"):
        asyncio.run(generate(generate_args(bare, tmp_path / "bare.out.jsonl", loopback_teacher, grounding_passages=2)))
