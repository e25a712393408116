"""Runs, metrics and the t-test, on toy runs and on the demo slice through the whole harness."""
import dataclasses
import json
import logging
import re

import numpy as np
import pytest
from scipy import stats

from o1e_pyserini.evaluation.cli import main
from o1e_pyserini.evaluation.harness import EvalConfig, evaluate
from o1e_pyserini.evaluation.regressions import compare
from o1e_pyserini.evaluation import retrievers, scoring

QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1, "d4": 1}, "q4": {"d9": 1}}
RUN_A = {"q1": [("d1", 3.0), ("d2", 2.0)], "q2": [("d1", 3.0), ("d2", 2.0)], "q3": [("d5", 1.0), ("d4", 0.5)]}
RUN_B = {"q1": [("d1", 3.0)], "q2": [("d2", 3.0)], "q3": [("d3", 1.0), ("d4", 0.5)], "q4": [("d8", 1.0)]}


def test_paired_ttest_matches_scipy_and_reports_deltas():
    result = scoring.paired_ttest(RUN_A, RUN_B, QRELS, "RR@10", missing="zero")
    rr_a, rr_b = [1.0, 0.5, 0.5, 0.0], [1.0, 1.0, 1.0, 0.0]  # by hand; q4 is judged but unanswered by A
    expected = stats.ttest_rel(rr_b, rr_a)
    assert result["t"] == pytest.approx(expected.statistic) and result["p"] == pytest.approx(expected.pvalue)
    assert result["deltas"] == {"q1": 0.0, "q2": 0.5, "q3": 0.5, "q4": 0.0}
    assert (result["mean_a"], result["mean_b"], result["num_queries"]) == (0.5, 0.75, 4)


def test_ttest_command_reads_trec_runs(tmp_path, capsys):
    """Run b is gzipped, as the miniature commits its runs."""
    import gzip
    for name, run in (("a", RUN_A), ("b", RUN_B)):
        scoring.write_run(run, tmp_path / f"{name}.trec", tag=name)
    (tmp_path / "b.trec.gz").write_bytes(gzip.compress((tmp_path / "b.trec").read_bytes()))
    (tmp_path / "b.trec").unlink()
    (tmp_path / "qrels.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q, docs in QRELS.items() for d, r in docs.items()))
    assert main(["ttest", "--qrels", str(tmp_path / "qrels.txt"), "--run-a", str(tmp_path / "a.trec"),
                          "--run-b", str(tmp_path / "b.trec.gz"), "--metric", "RR@10", "--output", str(tmp_path / "t.json"),
                          "--missing", "zero"]) == 0
    assert "a=0.5000 b=0.7500 " in capsys.readouterr().out
    assert json.loads((tmp_path / "t.json").read_text())["deltas"]["q2"] == 0.5


def test_duplicate_docids_are_removed_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        run, removed = scoring.dedup_run({"q1": [("d1", 3.0), ("d2", 2.0), ("d1", 1.0)], "q2": [("d1", 1.0)]})
    assert removed == 1 and run["q1"] == [("d1", 3.0), ("d2", 2.0)]
    assert "removed 1 duplicate" in caplog.text


def test_excluded_documents_are_dropped_per_query(tmp_path):
    run = {"q1": [("q1", 2.0), ("d1", 1.0)], "q2": [("q1", 3.0), ("d2", 1.0)]}
    assert scoring.drop_excluded(run, {"q1": {"q1"}}) == ({"q1": [("d1", 1.0)], "q2": run["q2"]}, 1)
    (tmp_path / "ex.json").write_text(json.dumps({"q1": ["d1", "N/A"], "q2": []}))
    assert scoring.read_excluded_ids(tmp_path / "ex.json") == {"q1": {"d1"}, "q2": set()}
    (tmp_path / "examples.jsonl").write_text(json.dumps({"id": 7, "query": "..", "excluded_ids": ["N/A"]}) + "\n"
                                             + json.dumps({"id": "8", "excluded_ids": ["a", 3]}) + "\n")
    assert scoring.read_excluded_ids(tmp_path / "examples.jsonl") == {"7": set(), "8": {"a", "3"}}
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": 7, "excluded_ids": []}) + "\n{\"id\": 9}\n")
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        scoring.read_excluded_ids(tmp_path / "bad.jsonl")


def test_excluded_ids_leave_runs_full_depth(demo_dir, tmp_path, index_root, no_pyserini_cache, caplog):
    """BM25 on the demo slice, then again with a query's top two hits excluded (BRIGHT's excluded_ids)."""
    dataset_id = "o1e-test/demo-excluded"
    from o1e_pyserini.evaluation import datasets
    datasets.register_trec_files(dataset_id, demo_dir / "topics.tsv", demo_dir / "qrels.txt", demo_dir / "corpus.jsonl")
    config = EvalConfig(dataset_id, retrievers.RetrieverSpec("bm25"), output_dir=tmp_path / "plain",
                                 index_root=index_root, hits=10)
    plain = scoring.read_run(evaluate(config)["run"])
    query = next(iter(plain))
    top_two = [d for d, _ in plain[query][:2]]
    (tmp_path / "excluded.json").write_text(json.dumps({query: top_two, "not-a-topic": ["x"]}))
    with caplog.at_level(logging.WARNING):
        record = evaluate(dataclasses.replace(config, output_dir=tmp_path / "excluded",
                                                       excluded_ids=tmp_path / "excluded.json"))
    run = scoring.read_run(record["run"])
    assert [d for d, _ in run[query]] == [d for d, _ in plain[query][2:]] + [d for d, _ in run[query][8:]]
    assert len(run[query]) == 10 and not set(top_two) & {d for d, _ in run[query]}
    assert all(run[q] == plain[q] for q in plain if q != query)
    assert record["excluded_hits_removed"] == 2 and record["excluded_ids_for_unknown_queries"] == ["not-a-topic"]
    assert "not among the topics (wrong file?)" in caplog.text


def test_metrics_follow_ranks_not_tied_scores():
    values = scoring.per_query({"q1": [("d2", 1.0), ("d1", 1.0)]}, {"q1": {"d1": 1}}, ["RR@10"])
    assert values["q1"]["RR@10"] == 0.5


def test_harness_reports_missing_docs_unjudged_queries(demo_dir, tmp_path, index_root, no_pyserini_cache, caplog):
    """BM25 on the demo slice through TREC topics/qrels with two planted faults."""
    queries = [json.loads(line) for line in open(demo_dir / "queries.jsonl")]
    qrels = [line.split("\t") for line in open(demo_dir / "qrels" / "test.tsv").read().splitlines()[1:]]
    (tmp_path / "topics.tsv").write_text("".join(f"{q['_id']}\t{q['text']}\n" for q in queries)
                                         + "unjudged-1\twhat no assessor looked at\n")
    (tmp_path / "qrels.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q, d, r in qrels) + f"{qrels[0][0]} 0 no-such-doc 1\n")
    dataset_id = "o1e-test/demo"
    from o1e_pyserini.evaluation import datasets
    datasets.register_trec_files(dataset_id, tmp_path / "topics.tsv", tmp_path / "qrels.txt", demo_dir / "corpus.jsonl")
    config = EvalConfig(dataset_id, retrievers.RetrieverSpec("bm25"), output_dir=tmp_path / "runs",
                                 index_root=index_root, hits=100)
    with caplog.at_level(logging.WARNING):
        record = evaluate(config)
    assert record["unjudged_queries"] == ["unjudged-1"]
    assert record["qrels_docs_missing_from_corpus"] == {"count": 1, "examples": [(qrels[0][0], "no-such-doc")]}
    assert "1 queries have no judgments" in caplog.text and "absent from the corpus" in caplog.text
    assert record["num_queries"] == len({q for q, _, _ in qrels})
    assert 0 < record["metrics"]["nDCG@10"] <= 1
    saved = json.loads((tmp_path / "runs" / "o1e-test__demo" / "bm25.metrics.json").read_text())
    assert saved["metrics"] == record["metrics"] and set(saved["per_query"]) == {q for q, _, _ in qrels}
    run = scoring.read_run(tmp_path / "runs" / "o1e-test__demo" / "bm25.trec")
    assert "unjudged-1" in run and all(len(hits) == len({d for d, _ in hits}) for hits in run.values())


def test_compare_prints_ours_against_the_paper(tmp_path, capsys):
    (tmp_path / "expected.yaml").write_text(
        "table: toy\nmetric_scale: 100\nconditions:\n  - name: o1e-think\n    datasets:\n"
        "      - dataset: beir/scifact/test\n        scores: {nDCG@10: 78.3}\n"
        "      - dataset: beir/nq\n        scores: {nDCG@10: 60.1}\n"
        "      - dataset: average\n        over: [beir/scifact/test, o1e/cosqa/dev]\n        scores: {nDCG@10: 61.4}\n")
    for dataset, value, thought, tokens in (("beir__scifact__test", 0.8, 150, 40.0), ("o1e__cosqa__dev", 0.4, 500, 90.0)):
        (tmp_path / "runs" / "o1e-think" / dataset).mkdir(parents=True)
        cost = {"queries_thought": thought, "generated_tokens_per_query": tokens, "thinking_seconds_per_query": 0.5}
        (tmp_path / "runs" / "o1e-think" / dataset / "o1e_model.metrics.json").write_text(
            json.dumps({"metrics": {"nDCG@10": value}, "num_queries": 300 if "scifact" in dataset else 500, "cost": cost}))
    rows = compare(tmp_path / "expected.yaml", tmp_path / "runs")
    assert [row["ours"] for row in rows] == [pytest.approx(80.0), None, pytest.approx(60.0)]
    assert [row["think_rate"] for row in rows] == [pytest.approx(0.5), None, pytest.approx(0.75)]
    assert rows[2]["generated_tokens_per_query"] == pytest.approx(65.0)
    out = capsys.readouterr().out
    assert "+1.70" in out and "missing" in out and "-1.40" in out
    assert "tok/q" in out and "50%" in out and "65.0" in out


def test_encoded_shards_become_the_cached_faiss_index(tmp_path):
    from o1e_tevatron.core.vectors import write_vectors
    vectors = np.eye(4, dtype=np.float32)
    for shard, ids in enumerate((["d0", "d1"], ["d2", "d3"])):
        write_vectors(tmp_path / f"corpus.{shard}.npz", vectors[2 * shard:2 * shard + 2], ids)
    spec = retrievers.RetrieverSpec("o1e:/models/o1e")
    index_dir = retrievers.import_shards(spec, [tmp_path / "corpus.1.npz", tmp_path / "corpus.0.npz"],
                                         tmp_path / "index", "key")
    assert retrievers.reusable_index(index_dir, "key") and not retrievers.reusable_index(index_dir, "other")
    assert retrievers.read_docids(index_dir) == ["d0", "d1", "d2", "d3"]
    import faiss

    from o1e_pyserini.search.sharded import ShardedIndex, shard_dirs
    assert len(shard_dirs(index_dir)) == 2 and not (index_dir / "index").exists()  # searched shard-wise, not merged
    assert ShardedIndex(shard_dirs(index_dir), gpu=False).search(vectors[2:3], 1)[1][0, 0] == 2
    (index_dir / "shard-001" / "index").write_bytes(b"torn")
    assert not retrievers.reusable_index(index_dir, "key")  # a damaged shard is rebuilt, not searched

    spec16 = retrievers.RetrieverSpec("o1e:/models/o1e", vector_dtype="float16")  # --vector-dtype float16
    index_dir = retrievers.import_shards(spec16, [tmp_path / "corpus.0.npz"], tmp_path / "index16", "key16")
    assert isinstance(faiss.read_index(str(index_dir / "shard-000" / "index")), faiss.IndexScalarQuantizer)
    assert spec16.index_key()["vector_dtype"] == "float16" and "vector_dtype" not in spec.index_key()


@pytest.mark.parametrize("ids, problem", [
    (["d0", "d0"], "document 2: the id 'd0' repeats"), (["d0", "d\n1"], "spans lines"),
    (["d0", "d\u20281"], "spans lines"), (["d0", "d1 "], "ends with whitespace")],
    ids=["repeated", "newline", "line-separator", "trailing-space"])
def test_shards_with_bad_docids_are_refused(tmp_path, ids, problem):
    """A docid with a line break made an index whose docid count was off; a repeated one was returned twice;
    Pyserini strips each docid line, so 'd1 ' came back as 'd1'."""
    from o1e_tevatron.core.vectors import write_vectors
    write_vectors(tmp_path / "corpus.npz", np.eye(2, dtype=np.float32), ids)
    with pytest.raises(ValueError, match=problem):
        retrievers.import_shards(retrievers.RetrieverSpec("o1e:/m"), [tmp_path / "corpus.npz"], tmp_path / "index", "k")


def ttest_cli(tmp_path, run_a_text, run_b_text, *flags):
    (tmp_path / "a.trec").write_text(run_a_text)
    (tmp_path / "b.trec").write_text(run_b_text)
    (tmp_path / "qrels.txt").write_text("".join(f"{q} 0 {d} {r}\n" for q, docs in QRELS.items() for d, r in docs.items()))
    return main(["ttest", "--qrels", str(tmp_path / "qrels.txt"), "--run-a", str(tmp_path / "a.trec"),
                          "--run-b", str(tmp_path / "b.trec"), "--metric", "RR@10", *flags])


def full_run(score=1.0):
    return "".join(f"{q} Q0 {d} 1 {score} x\n" for q, docs in QRELS.items() for d in list(docs)[:1])


@pytest.mark.parametrize("run_a, message", [
    ("", "a.trec: no records: the file is empty"),
    ("q1 Q0 d1 1 1.0 x\n", "run a has no hits for 3 of 4 judged queries (e.g. q2, q3, q4): pass --missing zero"),
    ("z1 Q0 d1 1 1.0 x\n", "run a answers none of the 4 judged queries"),
    ("q1 Q0 d1 1 high x\n", "a.trec:1: the score (5th column) 'high' is not a finite number"),
], ids=["empty", "most-missing", "other-dataset", "bad-score"])
def test_ttest_refuses_runs_that_are_not_evidence(tmp_path, capsys, run_a, message):
    """The old command scored an empty run, or one missing most queries, as zeros and called it significant."""
    assert ttest_cli(tmp_path, run_a, full_run()) == 2
    assert message in capsys.readouterr().err


def test_ttest_missing_policies(tmp_path, capsys):
    partial = "q1 Q0 d9 1 1.0 x\nq2 Q0 d2 1 1.0 x\n"
    assert ttest_cli(tmp_path, partial, full_run(), "--missing", "drop") == 0
    assert "(2 queries, 2 missing from a (drop))" in capsys.readouterr().out
    assert ttest_cli(tmp_path, partial, full_run(), "--missing", "zero") == 0
    assert "(4 queries, 2 missing from a (zero))" in capsys.readouterr().out


@pytest.mark.parametrize("qrels, message", [
    ("q1\td1\t1\n", "qrels.txt:1: a TREC qrels line has 4 columns (query_id 0 doc_id relevance), this one 3: a BEIR"),
    ("q1 0 d1 1\nq2 0 d2 high\n", "qrels.txt:2: the relevance 'high' is not an integer"),
    (b"q1 0 d\xff1 1\n", "qrels.txt:1: not UTF-8 text"),
], ids=["beir-tsv", "bad-relevance", "not-utf8"])
def test_bad_qrels_lines_are_named(tmp_path, qrels, message):
    path = tmp_path / "qrels.txt"
    path.write_bytes(qrels if isinstance(qrels, bytes) else qrels.encode())
    with pytest.raises(ValueError, match=re.escape(message)):
        scoring.read_qrels(path)


def test_compare_with_a_wrong_results_folder_fails(tmp_path, capsys):
    expected = tmp_path / "expected.yaml"
    expected.write_text("table: 1\nconditions:\n- name: o1e\n  datasets:\n  - dataset: beir/scifact/test\n"
                        "    scores: {nDCG@10: 0.7}\n")
    (tmp_path / "runs").mkdir()
    assert main(["compare", "--expected", str(expected), "--results", str(tmp_path / "runs")]) == 2
    assert "none of the 1 results" in capsys.readouterr().err
    assert main(["compare", "--expected", str(expected), "--results", str(tmp_path / "nope")]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.parametrize("entry", ["{dataset: beir/scifact/test}", "{dataset: beir/scifact/test, scores: {}}",
                                   "{dataset: beir/scifact/test, scores: {nDCG@10: null}}"])
def test_regress_refuses_an_entry_that_checks_nothing(tmp_path, capsys, entry):
    """The old command passed such an entry after running it: a regression that cannot fail."""
    spec = tmp_path / "regressions.yaml"
    spec.write_text(f"tolerance: 1.0e-4\nconditions:\n- name: bm25\n  retriever: bm25\n  datasets:\n  - {entry}\n")
    assert main(["regress", "--regressions", str(spec)]) == 2
    assert "checks nothing" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--hits", "--threads", "--batch-size", "--num-thoughts"])
def test_eval_counts_below_one_are_refused(capsys, flag):
    """--hits 0 used to search nothing and score every query 0."""
    with pytest.raises(SystemExit):
        main(["--dataset", "beir/scifact/test", "--retriever", "bm25", flag, "0"])
    assert f"argument {flag}: must be at least 1, got 0" in capsys.readouterr().err
