"""DEBATER through Pyserini's search CLI and the eval harness, against brute force over the step vectors."""
import json

import numpy as np
import pytest

from o1e_pyserini.evaluation import datasets
from o1e_pyserini.evaluation.cli import main
from o1e_pyserini.encoders.debater import DebaterDocumentEncoder, DebaterQueryEncoder, task_instruction
from o1e_tevatron.families.debater.model import DebaterConfig, DebaterModel

HITS = 7
STEPS = 3
INSTRUCTION = "Given a scientific claim, retrieve documents that support or refute the claim:"


@pytest.fixture(scope="module")
def debater_checkpoint(tiny_llama_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("debater-ckpt")
    model = DebaterModel.build(str(tiny_llama_dir), DebaterConfig(num_steps=STEPS, passage_max_len=48),
                               lora=True, lora_r=4, lora_alpha=8)
    model.save(out)
    return out


@pytest.fixture(scope="module")
def corpus(demo_dir):
    """The first 120 demo passages: (ids, texts as ``title text``)."""
    rows = [json.loads(line) for line in (demo_dir / "corpus.jsonl").read_text().splitlines()[:120]]
    return [r["_id"] for r in rows], [f"{r['title']} {r['text']}" for r in rows]


def brute_force(query_vectors, step_vectors, ids, scoring):
    """{query row: [(docid, score)] best first}: last step, or max over the steps, over every passage."""
    scores = np.einsum("qd,pmd->qpm", query_vectors, step_vectors)
    scores = scores[..., -1] if scoring == "last" else scores.max(-1)
    return [[(ids[j], float(row[j])) for j in np.argsort(-row, kind="stable")[:HITS]] for row in scores]


def test_max_steps_search_through_pyserini_cli_equals_brute_force(cli, debater_checkpoint, corpus, topics_tsv,
                                                                  demo_queries, tmp_path):
    ids, texts = corpus
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in zip(ids, texts)))
    cli("o1e_tevatron.driver.encode", "--model_name_or_path", debater_checkpoint, "--encode_in_path", path,
        "--faiss_index_dir", tmp_path / "index", "--debater_scoring", "max-steps", "--output_dir", tmp_path / "t")
    run = tmp_path / "run.txt"
    cli("o1e_pyserini.search.faiss", "--index", tmp_path / "index", "--topics", topics_tsv, "--output", run,
        "--encoder", debater_checkpoint, "--hits", HITS, "--device", "cpu", "--threads", 1, "--batch-size", 4,
        "--query-prefix", INSTRUCTION, "--debater-scoring", "max-steps")
    got = {}
    for line in run.read_text().splitlines():
        qid, _, docid, rank, score, _ = line.split()
        got.setdefault(qid, []).append((docid, float(score)))

    queries = DebaterQueryEncoder(str(debater_checkpoint), instruction=INSTRUCTION)
    expected = brute_force(queries.encode_batch(list(demo_queries.values())),
                           DebaterDocumentEncoder(str(debater_checkpoint)).encode_steps(texts), ids, "max-steps")
    assert set(got) == set(demo_queries)
    for qid, hits in zip(demo_queries, expected):
        assert [d for d, _ in got[qid]] == [d for d, _ in hits]
        np.testing.assert_allclose([s for _, s in got[qid]], [s for _, s in hits], atol=1e-4)


@pytest.mark.parametrize("scoring", ["last", "max-steps"])
def test_debater_in_the_eval_harness_equals_brute_force(debater_checkpoint, demo_dir, corpus, tmp_path, scoring):
    """``debater:MODEL`` on a 120-passage slice of the demo data; the run is the brute-force ranking."""
    ids, texts = corpus
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n"
                                                 for i, t in zip(ids, texts)))
    for name in ("queries.jsonl", "qrels"):
        src = demo_dir / name
        (folder / name).symlink_to(src, target_is_directory=src.is_dir())
    datasets.register_beir_folder("o1e/scifact/slice", folder, "test")
    assert main(["--dataset", "o1e/scifact/slice", "--retriever", f"debater:{debater_checkpoint}",
                          "--output-dir", str(tmp_path / "runs"), "--index-root", str(tmp_path / "idx"),
                          "--hits", str(HITS), "--threads", "1", "--debater-scoring", scoring]) == 0
    record = json.loads(next((tmp_path / "runs").rglob("*.metrics.json")).read_text())
    assert record["retriever"]["query_options"] == {"instruction": INSTRUCTION}  # SciFact's, by the dataset id
    assert record["duplicate_hits_removed"] == 0
    run = {}
    for line in open(record["run"]):
        qid, _, docid, _, score, _ = line.split()
        run.setdefault(qid, []).append((docid, float(score)))

    queries = [json.loads(line) for line in (demo_dir / "queries.jsonl").read_text().splitlines()]
    queries = [q for q in queries if q["_id"] in run]
    encoder = DebaterQueryEncoder(str(debater_checkpoint), instruction=INSTRUCTION)
    expected = brute_force(encoder.encode_batch([q["text"] for q in queries]),
                           DebaterDocumentEncoder(str(debater_checkpoint)).encode_steps(texts), ids, scoring)
    for q, hits in zip(queries, expected):
        assert [d for d, _ in run[q["_id"]]] == [d for d, _ in hits]
        np.testing.assert_allclose([s for _, s in run[q["_id"]]], [s for _, s in hits], atol=1e-4)


def test_task_instructions_follow_the_dataset_id():
    assert task_instruction("beir/scifact/test") == INSTRUCTION
    assert task_instruction("beir/fiqa/dev").startswith("Given a financial question")
    assert task_instruction("o1e/cosqa/dev") == "Given a web search query, retrieve code that answers the query:"
    assert task_instruction("o1e/scifact/dev") == INSTRUCTION
    assert task_instruction("beir/nonexistent/test") is None
