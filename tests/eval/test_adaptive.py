"""Adaptive thinking in the harness: all / none thinking equals think / fast exactly; a rate thinks for
the most uncertain queries; every decision is recorded (metrics JSON and thoughts.jsonl)."""
import json
import math

import pytest

from o1e_pyserini.evaluation import datasets
from o1e_pyserini.evaluation.cli import main
from o1e_pyserini.evaluation.harness import summary_line
from o1e_pyserini.thinking.adaptive import AdaptivePolicy, margin_uncertainty, score_entropy, uncertainties

DEMO_ID = "o1e/demo/test"
THINK = ["--num-thoughts", "2", "--max-thought-tokens", "4", "--seed", "5", "--temperature", "0.7", "--no-thought-cache"]


def test_signals_and_policies_on_literal_runs():
    run = {"a": [("d1", 0.9), ("d2", 0.1)], "b": [("d1", 0.5), ("d2", 0.45), ("d3", 0.4)], "c": [("d1", 0.3)]}
    assert uncertainties("margin", run) == {"a": pytest.approx(-0.8), "b": pytest.approx(-0.05), "c": -math.inf}
    # softmax of (0.5, 0.45, 0.4) / 0.02 by hand
    weights = [math.exp((s - 0.5) / 0.02) for s in (0.5, 0.45, 0.4)]
    probs = [w / sum(weights) for w in weights]
    assert score_entropy(run["b"]) == pytest.approx(-sum(p * math.log(p) for p in probs))
    assert margin_uncertainty([]) == math.inf
    values = {"a": 0.1, "b": 0.7, "c": 0.7, "d": 0.3}
    decided = AdaptivePolicy("model-entropy", rate=0.5).decide(values)
    assert {q for q, d in decided.items() if d["think"]} == {"b", "c"}
    assert decided["b"]["value"] == 0.7 and "most uncertain" in decided["b"]["reason"]
    assert {q for q, d in AdaptivePolicy("model-entropy", rate=0.25).decide(values).items() if d["think"]} == {"b"}
    assert {q for q, d in AdaptivePolicy("margin", threshold=0.3).decide(values).items() if d["think"]} == {"b", "c", "d"}
    with pytest.raises(ValueError, match="threshold or a think rate"):
        AdaptivePolicy("margin")


def _run(tmp_path, index_root, checkpoint, name, *flags):
    out = tmp_path / name
    assert main(["--dataset", DEMO_ID, "--retriever", f"o1e:{checkpoint}", "--output-dir", str(out),
                          "--index-root", str(index_root), "--hits", "20", "--threads", "1", *flags]) == 0
    record = json.loads(next(out.glob("o1e__demo__test/*.metrics.json")).read_text())
    return record, (out / "o1e__demo__test" / next(out.glob("o1e__demo__test/*.trec")).name).read_text()


def test_adaptive_equals_think_or_fast_at_the_extremes_and_thinks_for_the_most_uncertain(
        o1e_checkpoint, demo_dir, tmp_path, index_root):
    datasets.register_beir_folder(DEMO_ID, demo_dir, "test")
    fast, fast_run = _run(tmp_path, index_root, o1e_checkpoint, "fast", "--mode", "fast")
    think, think_run = _run(tmp_path, index_root, o1e_checkpoint, "think", "--mode", "think", *THINK)
    assert fast_run != think_run
    everyone, everyone_run = _run(tmp_path, index_root, o1e_checkpoint, "all", "--mode", "adaptive",
                                  "--think-threshold=-inf", *THINK)
    nobody, nobody_run = _run(tmp_path, index_root, o1e_checkpoint, "none", "--mode", "adaptive",
                              "--think-threshold=inf", *THINK)
    assert _without_tags(everyone_run) == _without_tags(think_run)  # the tag is the run's name
    assert _without_tags(nobody_run) == _without_tags(fast_run)
    assert everyone["metrics"] == think["metrics"] and nobody["metrics"] == fast["metrics"]
    assert everyone["cost"]["queries_thought"] == 48 and nobody["cost"]["queries_thought"] == 0
    assert think["cost"]["generated_tokens_per_query"] == everyone["cost"]["generated_tokens_per_query"] > 0

    rated, _ = _run(tmp_path, index_root, o1e_checkpoint, "rate", "--mode", "adaptive", "--think-rate", "0.25",
                    "--adaptive-signal", "margin", *THINK)
    decisions = rated["adaptive"]["decisions"]
    thought = {q for q, d in decisions.items() if d["think"]}
    assert len(thought) == round(0.25 * 48) == rated["cost"]["queries_thought"]
    # the most uncertain margins of the fast run (no ties at the cut on this slice)
    fast_margins = {q: -(v[0] - v[1]) for q, v in _top_two(tmp_path / "fast").items()}
    cut = sorted(fast_margins.values(), reverse=True)[11]
    assert thought == {q for q, m in fast_margins.items() if m >= cut}
    assert all(d["value"] == pytest.approx(fast_margins[q], abs=2e-6) for q, d in decisions.items())
    rows = [json.loads(line) for line in
            next((tmp_path / "rate").glob("o1e__demo__test/*.queries/thoughts.jsonl")).read_text().splitlines()]
    assert {r["query_id"] for r in rows if r["adaptive"]["think"]} == thought
    assert all(bool(r["thoughts"]) == r["adaptive"]["think"] for r in rows)


def _top_two(out_dir):
    from o1e_pyserini.evaluation import scoring
    run = scoring.read_run(next(out_dir.glob("o1e__demo__test/*.trec")))
    return {q: [s for _, s in hits[:2]] for q, hits in run.items()}


def _without_tags(run_text):
    return [line.split()[:5] for line in run_text.splitlines()]


def test_adaptive_curve_on_literal_runs(tmp_path, capsys):
    from o1e_pyserini.evaluation import scoring

    qrels = tmp_path / "qrels.txt"
    qrels.write_text("a 0 d1 1\nb 0 d2 1\nc 0 d3 1\n")
    fast = {"a": [("d1", 0.9), ("d2", 0.1)], "b": [("d1", 0.5), ("d2", 0.45)], "c": [("d1", 0.6), ("d3", 0.2)]}
    think = {"a": [("d2", 0.9), ("d1", 0.8)], "b": [("d2", 0.9), ("d1", 0.1)], "c": [("d3", 0.9), ("d1", 0.1)]}
    paths = {}
    for name, run in (("fast", fast), ("think", think)):
        paths[name] = scoring.write_run(run, tmp_path / f"{name}.trec", tag=name)
    (tmp_path / "fast.jsonl").write_text("".join(json.dumps({"query_id": q, "text": q, "thoughts": [], "entropy": e})
                                                 + "\n" for q, e in (("a", 3.0), ("b", 1.0), ("c", 2.0))))
    (tmp_path / "think.jsonl").write_text("".join(json.dumps({"query_id": q, "text": q, "thoughts": ["t"],
                                                              "generated_tokens": n}) + "\n"
                                                  for q, n in (("a", 30), ("b", 60), ("c", 90))))
    out, plot = tmp_path / "curve.json", tmp_path / "curve.png"
    assert main(["adaptive-curve", "--qrels", str(qrels), "--fast-run", str(paths["fast"]), "--think-run",
                          str(paths["think"]), "--fast-queries", str(tmp_path / "fast.jsonl"), "--think-queries",
                          str(tmp_path / "think.jsonl"), "--output", str(out), "--plot", str(plot)]) == 0
    curve = json.loads(out.read_text())
    # nDCG@10 per query: fast a 1, b 1/log2(3), c 1/log2(3); think a 1/log2(3), b 1, c 1
    low = 1 / math.log2(3)
    assert curve["never_think"] == pytest.approx((1 + 2 * low) / 3) and curve["always_think"] == pytest.approx((2 + low) / 3)
    # margin uncertainty: b (-0.05) > c (-0.4) > a (-0.8): b thinks first, then c, then a
    assert [p["score"] for p in curve["curves"]["margin"]] == pytest.approx(
        [(1 + 2 * low) / 3, (2 + low) / 3, 1.0, (2 + low) / 3])
    assert [p["generated_tokens_per_query"] for p in curve["curves"]["margin"]] == pytest.approx([0, 20, 50, 60])
    assert curve["curves"]["margin"][1]["threshold"] == pytest.approx(-0.05)
    # model entropy: a (3) > c (2) > b (1)
    assert [p["score"] for p in curve["curves"]["model-entropy"]] == pytest.approx(
        [(1 + 2 * low) / 3, low, (2 * low + 1) / 3, (2 + low) / 3])
    assert set(curve["curves"]) == {"margin", "score-entropy", "model-entropy"}
    # 95% of the gain (always - never = (1 - low) / 3): margin has all of it with 1 of 3 queries thinking,
    # model entropy only with all 3
    assert curve["operating_points"]["margin"]["queries_thought"] == 1
    assert curve["operating_points"]["margin"]["threshold"] == pytest.approx(-0.05)
    assert curve["operating_points"]["model-entropy"]["queries_thought"] == 3
    assert plot.stat().st_size > 1000
    assert "never" in capsys.readouterr().out


def test_adaptive_reuses_the_thoughts_think_cached_and_every_run_records_its_cost(
        o1e_checkpoint, demo_dir, tmp_path, index_root):
    """Think fills the thought cache; adaptive then thinks for a quarter of the queries from it, generating
    nothing. Each metrics JSON (and summary line) carries the cost, for o1e's and Pyserini's encoders."""
    datasets.register_beir_folder(DEMO_ID, demo_dir, "test")
    cached = [flag for flag in THINK if flag != "--no-thought-cache"] + ["--thought-cache", str(tmp_path / "cache")]
    think, _ = _run(tmp_path, index_root, o1e_checkpoint, "think", "--mode", "think", *cached)
    rated, _ = _run(tmp_path, index_root, o1e_checkpoint, "rate", "--mode", "adaptive", "--think-rate", "0.25", *cached)
    assert think["cost"]["queries_from_thought_cache"] == 0 and think["cost"]["generated_tokens_per_query"] > 0
    assert rated["cost"]["queries_thought"] == rated["cost"]["queries_from_thought_cache"] == 12
    assert rated["cost"]["generated_tokens_per_query"] == 0
    cost = think["cost"]
    assert cost["queries_thought"] == 48 and cost["thinking_seconds_per_query"] > 0
    assert cost["query_encoding_qps"] > 0 and cost["search_qps"] > 0 and "CPU cores" in cost["hardware"]
    line = summary_line(think)
    assert f"thought 48/48, {cost['generated_tokens_per_query']} tokens/q" in line and cost["hardware"] in line

    out = tmp_path / "minilm"  # a Pyserini encoder: its encoding is timed apart from the search too
    assert main(["--dataset", DEMO_ID, "--retriever", "auto:sentence-transformers/all-MiniLM-L6-v2",
                          "--output-dir", str(out), "--index-root", str(index_root), "--hits", "20",
                          "--threads", "1"]) == 0
    cost = json.loads(next(out.glob("o1e__demo__test/*.metrics.json")).read_text())["cost"]
    assert cost["queries_thought"] == 0 and cost["query_encoding_qps"] > 0 and cost["search_qps"] > 0
