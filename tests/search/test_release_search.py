"""DEBATER's release (tests/release_layouts.py) through Pyserini's encode and search CLIs and the eval harness,
``trust_remote_code`` opted in: the index holds the release's last-step vectors, and the runs rank and
score by the release's own query and passage vectors."""
import json

import numpy as np
import pytest

from o1e_pyserini.evaluation import datasets
from o1e_pyserini.evaluation.cli import main

from release_layouts import (INSTRUCTION, PASSAGES, QUERIES, debater_release,  # noqa: F401 (fixtures)
                             debater_release_encode, release_base)

HITS = 3
IDS = [f"d{i}" for i in range(len(PASSAGES))]


def release_ranking(adapter) -> list[list[tuple[str, float]]]:
    """Per query, the passages best first by the release's query vector . last-step vector."""
    scores = debater_release_encode(adapter, QUERIES, INSTRUCTION).numpy() @ \
        debater_release_encode(adapter, PASSAGES, query=False)[:, -1].numpy().T
    return [[(IDS[j], float(row[j])) for j in np.argsort(-row, kind="stable")[:HITS]] for row in scores]


def read_run(path) -> dict[str, list[tuple[str, float]]]:
    run = {}
    for line in open(path):
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, []).append((docid, float(score)))
    return run


def assert_same_ranking(run, expected):
    for qid, hits in zip((f"q{i}" for i in range(len(QUERIES))), expected):
        assert [d for d, _ in run[qid]] == [d for d, _ in hits]
        np.testing.assert_allclose([s for _, s in run[qid]], [s for _, s in hits], atol=1e-4)


def beir_folder(folder):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": "", "text": p}) + "\n"
                                                 for i, p in zip(IDS, PASSAGES)))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": q}) + "\n"
                                                  for i, q in enumerate(QUERIES)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\td{i}\t1\n" for i in range(len(QUERIES))))
    return folder


def test_pyserini_clis_search_the_release_as_it_does(cli, debater_release, tmp_path):
    import faiss

    folder = beir_folder(tmp_path / "data")
    proc = cli("o1e_pyserini.encode", "input", "--corpus", folder / "corpus.jsonl", "--fields", "title", "text",
               "output", "--embeddings", tmp_path / "index", "--to-faiss",
               "encoder", "--encoder", debater_release, "--fields", "title", "text", "--device", "cpu",
               "--dimension", 64, "--batch-size", 2, "--o1e-trust-remote-code")
    assert "trust_remote_code is on: running the Python code" in proc.stderr
    np.testing.assert_allclose(faiss.read_index(str(tmp_path / "index" / "index")).reconstruct_n(0, len(IDS)),
                               debater_release_encode(debater_release, PASSAGES, query=False)[:, -1], atol=1e-5)
    topics = tmp_path / "topics.tsv"
    topics.write_text("".join(f"q{i}\t{q}\n" for i, q in enumerate(QUERIES)))
    cli("o1e_pyserini.search.faiss", "--index", tmp_path / "index", "--topics", topics, "--output", tmp_path / "run",
        "--encoder", debater_release, "--hits", HITS, "--device", "cpu", "--threads", 1, "--batch-size", 2,
        "--query-prefix", INSTRUCTION, "--o1e-trust-remote-code")
    assert_same_ranking(read_run(tmp_path / "run"), release_ranking(debater_release))


def test_the_harness_scores_the_release(debater_release, tmp_path):
    datasets.register_beir_folder("o1e/scifact/release", beir_folder(tmp_path / "data"), "test")
    assert main(["--dataset", "o1e/scifact/release", "--retriever", f"debater:{debater_release}",
                          "--trust-remote-code", "--output-dir", str(tmp_path / "runs"), "--index-root",
                          str(tmp_path / "idx"), "--hits", str(HITS), "--threads", "1"]) == 0
    record = json.loads(next((tmp_path / "runs").rglob("*.metrics.json")).read_text())
    assert record["retriever"]["trust_remote_code"]
    assert record["retriever"]["query_options"] == {"instruction": INSTRUCTION}
    assert_same_ranking(read_run(record["run"]), release_ranking(debater_release))


def test_mteb_wraps_the_release_as_debater(debater_release):
    pytest.importorskip("mteb")
    from o1e_pyserini.encoders.debater import DebaterDocumentEncoder
    from o1e_pyserini.mteb import FamilyEncoder

    model = FamilyEncoder(str(debater_release), trust_remote_code=True)
    assert model.family == "debater" and isinstance(model.documents, DebaterDocumentEncoder)
    np.testing.assert_allclose(model.documents.encode(PASSAGES),
                               debater_release_encode(debater_release, PASSAGES, query=False)[:, -1], atol=1e-5)
