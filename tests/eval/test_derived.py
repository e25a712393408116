"""Runs derived from runs already searched (o1e_pyserini.evaluation.derived) equal the harness's own:
``adaptive-run`` from a fast and a think run = ``--mode adaptive``; ``fuse --dataset`` of a dense and a BM25
run = ``--hybrid bm25``; both scored and recorded as the harness records a run."""
import json

import pytest

from o1e_pyserini.evaluation import datasets, scoring
from o1e_pyserini.evaluation.cli import main
from tests.eval.test_adaptive import DEMO_ID, THINK

SLUG = "o1e__demo__test"


def _search(tmp_path, index_root, retriever, name, *flags):
    out = tmp_path / name
    assert main(["--dataset", DEMO_ID, "--retriever", retriever, "--output-dir", str(out),
                 "--index-root", str(index_root), "--hits", "20", "--threads", "1", *flags]) == 0
    run = next(out.glob(f"{SLUG}/*.trec"))
    return run, json.loads(run.with_suffix(".metrics.json").read_text())


def _ranking(path):
    return {q: [doc for doc, _ in hits] for q, hits in scoring.read_run(path).items()}


def test_adaptive_run_from_runs_equals_the_harness_adaptive_mode(o1e_checkpoint, demo_dir, tmp_path, index_root):
    datasets.register_beir_folder(DEMO_ID, demo_dir, "test")
    cached = [flag for flag in THINK if flag != "--no-thought-cache"] + ["--thought-cache", str(tmp_path / "cache")]
    model = f"o1e:{o1e_checkpoint}"
    fast, fast_record = _search(tmp_path, index_root, model, "fast", "--mode", "fast")
    think, think_record = _search(tmp_path, index_root, model, "think", "--mode", "think", *cached)
    online, online_record = _search(tmp_path, index_root, model, "adaptive", "--mode", "adaptive",
                                    "--adaptive-signal", "margin", "--think-rate", "0.375", *cached)
    output = tmp_path / "derived" / "adaptive.trec"
    assert main(["adaptive-run", "--dataset", DEMO_ID, "--fast-run", str(fast), "--think-run", str(think),
                 "--think-queries", str(next((tmp_path / "think").glob(f"{SLUG}/*.queries/thoughts.jsonl"))),
                 "--adaptive-signal", "margin", "--think-rate", "0.375", "--output", str(output)]) == 0
    record = json.loads((output.parent / "adaptive.metrics.json").read_text())
    assert _ranking(output) == _ranking(online) != _ranking(fast)
    thinking = {q for q, d in record["adaptive"]["decisions"].items() if d["think"]}
    assert thinking == {q for q, d in online_record["adaptive"]["decisions"].items() if d["think"]}
    assert len(thinking) == round(0.375 * 48) == record["cost"]["queries_thought"]
    assert record["metrics"] == pytest.approx(online_record["metrics"], abs=1e-9)
    assert record["per_query"].keys() == online_record["per_query"].keys()
    # online the thoughts came from the cache; derived, the cost counts what the think run generated for them
    rows = [json.loads(line) for line in
            next((tmp_path / "think").glob(f"{SLUG}/*.queries/thoughts.jsonl")).read_text().splitlines()]
    assert record["cost"]["generated_tokens_per_query"] == pytest.approx(
        sum(r["generated_tokens"] for r in rows if r["query_id"] in thinking) / 48, abs=0.01)
    assert 0 < record["cost"]["query_encoding_qps"] < fast_record["cost"]["query_encoding_qps"]


def test_fuse_with_a_dataset_equals_the_harness_hybrid(o1e_checkpoint, demo_dir, tmp_path, index_root):
    datasets.register_beir_folder(DEMO_ID, demo_dir, "test")
    model = f"o1e:{o1e_checkpoint}"
    fast, fast_record = _search(tmp_path, index_root, model, "fast", "--mode", "fast")
    bm25, _ = _search(tmp_path, index_root, "bm25", "bm25")
    online, online_record = _search(tmp_path, index_root, model, "hybrid", "--mode", "fast", "--hybrid", "bm25",
                                    "--fusion-weight", "0.3")
    output = tmp_path / "derived" / "hybrid.trec"
    assert main(["fuse", "--runs", str(fast), str(bm25), "--fusion-weight", "0.3", "--hits", "20",
                 "--dataset", DEMO_ID, "--output", str(output)]) == 0
    record = json.loads((output.parent / "hybrid.metrics.json").read_text())
    assert _ranking(output) == _ranking(online) != _ranking(fast)
    assert record["metrics"] == pytest.approx(online_record["metrics"], abs=1e-9)
    assert record["fusion"]["weight"] == 0.3 and record["cost"]["derived_from_runs"]
    assert record["cost"]["query_encoding_qps"] == fast_record["cost"]["query_encoding_qps"]


def test_adaptive_run_refuses_a_think_run_without_a_thinking_query(tmp_path, capsys):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("a 0 d1 1\nb 0 d2 1\n")
    fast = scoring.write_run({"a": [("d1", 0.9), ("d2", 0.1)], "b": [("d1", 0.5), ("d2", 0.45)]},
                             tmp_path / "fast.trec", tag="fast")
    think = scoring.write_run({"a": [("d2", 0.9)]}, tmp_path / "think.trec", tag="think")
    assert main(["adaptive-run", "--qrels", str(qrels), "--fast-run", str(fast), "--think-run", str(think),
                 "--think-threshold=-0.1", "--output", str(tmp_path / "out.trec")]) != 0
    assert "no hits for 1 queries that think, e.g. ['b']" in capsys.readouterr().err


def test_adaptive_run_on_model_entropy_needs_the_fast_runs_thoughts(tmp_path, capsys):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("a 0 d1 1\n")
    fast = scoring.write_run({"a": [("d1", 0.9)]}, tmp_path / "fast.trec", tag="fast")
    assert main(["adaptive-run", "--qrels", str(qrels), "--fast-run", str(fast), "--think-run", str(fast),
                 "--adaptive-signal", "model-entropy", "--think-rate", "0.5", "--output", str(tmp_path / "o.trec")]) != 0
    assert "give --fast-queries" in capsys.readouterr().err
