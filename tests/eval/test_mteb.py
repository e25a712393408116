"""mteb scores o1e's families as the harness does: an mteb retrieval task built from a slice of the local
SciFact copy gives the nDCG@10 of ``python -m o1e_pyserini.eval`` on the same model and data."""
import json

import pytest

from o1e_pyserini.evaluation.cli import main

mteb = pytest.importorskip("mteb")

NUM_QUERIES, NUM_OTHER_DOCS = 20, 120
THINK = {"mode": "think", "num_thoughts": 2, "max_new_tokens": 4, "seed": 0}


@pytest.fixture(scope="module")
def scifact_slice(shared_data, tmp_path_factory):
    """The first test queries, their judged documents and other documents, as a BEIR folder."""
    src = shared_data / "scifact"
    lines = (src / "qrels" / "test.tsv").read_text().splitlines()
    qrels = {}
    for line in lines[1:]:
        query_id, doc_id, score = line.split("\t")
        qrels.setdefault(query_id, {})[doc_id] = int(score)
    qrels = dict(list(qrels.items())[:NUM_QUERIES])
    judged = {d for docs in qrels.values() for d in docs}
    corpus = [r for n, r in enumerate(map(json.loads, open(src / "corpus.jsonl")))
              if n < NUM_OTHER_DOCS or r["_id"] in judged]
    queries = [r for r in map(json.loads, open(src / "queries.jsonl")) if r["_id"] in qrels]
    folder = tmp_path_factory.mktemp("data") / "scifact"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (folder / "qrels" / "test.tsv").write_text(lines[0] + "\n" + "".join(
        f"{q}\t{d}\t{s}\n" for q, docs in qrels.items() for d, s in docs.items()))
    return folder, corpus, queries, qrels


@pytest.fixture(scope="module")
def debater_checkpoint(tiny_llama_dir, tmp_path_factory):
    from o1e_tevatron.families.debater.model import DebaterConfig, DebaterModel

    out = tmp_path_factory.mktemp("debater-ckpt")
    DebaterModel.build(str(tiny_llama_dir), DebaterConfig(num_steps=3), lora=True, lora_r=4, lora_alpha=8).save(out)
    return out


def mteb_ndcg_at_10(model, corpus, queries, qrels) -> float:
    from datasets import Dataset

    task = mteb.get_task("SciFact")
    task.dataset = {"default": {"test": {
        "corpus": Dataset.from_list([{"id": r["_id"], "title": r["title"], "text": r["text"]} for r in corpus]),
        "queries": Dataset.from_list([{"id": r["_id"], "text": r["text"]} for r in queries]),
        "relevant_docs": qrels, "top_ranked": None}}}
    task.data_loaded = True  # offline: the local slice, never the hub
    result = mteb.evaluate(model, task, cache=None, show_progress_bar=False)
    return result.task_results[0].scores["test"][0]["ndcg_at_10"]


@pytest.mark.parametrize("family, options, flags", [
    ("o1e", {"mode": "fast"}, ["--mode", "fast"]),
    ("o1e", THINK, ["--mode", "think", "--num-thoughts", "2", "--max-thought-tokens", "4", "--seed", "0"]),
    ("debater", {}, []),
], ids=["o1e-fast", "o1e-think", "debater"])
def test_mteb_ndcg_equals_the_harness(family, options, flags, scifact_slice, o1e_checkpoint, debater_checkpoint,
                                     tmp_path, index_root):
    from o1e_pyserini.mteb import FamilyEncoder

    folder, corpus, queries, qrels = scifact_slice
    checkpoint = o1e_checkpoint if family == "o1e" else debater_checkpoint
    assert main(["--dataset", "beir/scifact/test", "--retriever", f"{family}:{checkpoint}",
                          "--data-dir", str(folder.parent), "--output-dir", str(tmp_path), "--index-root",
                          str(index_root / folder.parent.name), "--hits", "100", "--threads", "1", *flags]) == 0
    record = json.loads(next(tmp_path.rglob("*.metrics.json")).read_text())
    assert record["num_queries"] == NUM_QUERIES
    ours = mteb_ndcg_at_10(FamilyEncoder(str(checkpoint), **options), corpus, queries, qrels)
    assert ours == pytest.approx(record["metrics"]["nDCG@10"], abs=1e-4)
    assert 0 < ours < 1
