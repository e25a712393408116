"""The harness's cached index is keyed by content: another model in the same folder, or a changed
corpus under --data-dir, rebuilds it; an index of another dimension is a clear error."""
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from o1e_pyserini.evaluation.cli import main
from o1e_pyserini.evaluation.harness import EvalConfig, evaluate
from o1e_pyserini.evaluation import retrievers
from tests.search.conftest import with_other_weights


@pytest.fixture
def scifact_dir(demo_dir, tmp_path):
    """A 40-passage SciFact-shaped folder under a --data-dir (beir/scifact/test resolves to it)."""
    folder = tmp_path / "data" / "scifact"
    (folder / "qrels").mkdir(parents=True)
    docs = (demo_dir / "corpus.jsonl").read_text().splitlines(keepends=True)[:40]
    ids = {json.loads(line)["_id"] for line in docs}
    qrels = [line.split("\t") for line in (demo_dir / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    qrels = [(q, d, r) for q, d, r in qrels if d in ids]
    queries = {q for q, _, _ in qrels}
    (folder / "corpus.jsonl").write_text("".join(docs))
    (folder / "queries.jsonl").write_text("".join(line for line in (demo_dir / "queries.jsonl").read_text().splitlines(True)
                                                  if json.loads(line)["_id"] in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in qrels))
    return folder


def run(checkpoint, data_dir, tmp_path, index_root):
    retriever = retrievers.RetrieverSpec(f"o1e:{checkpoint}", query_options={"mode": "fast"})
    return evaluate(EvalConfig("beir/scifact/test", retriever, data_dir=data_dir,
                                                 output_dir=tmp_path / "runs", index_root=index_root, hits=10))


def test_another_model_in_the_same_folder_rebuilds_the_index(o1e_checkpoint, scifact_dir, tmp_path, caplog):
    folder = tmp_path / "ckpt"
    shutil.copytree(o1e_checkpoint, folder)
    run(folder, scifact_dir.parent, tmp_path, tmp_path / "indexes")
    shutil.rmtree(folder)
    with_other_weights(o1e_checkpoint, folder)
    with caplog.at_level(logging.WARNING):
        cached = run(folder, scifact_dir.parent, tmp_path, tmp_path / "indexes")
    assert "built from another model, corpus or settings" in caplog.text
    fresh = run(folder, scifact_dir.parent, tmp_path, tmp_path / "fresh-indexes")
    assert cached["per_query"] == fresh["per_query"]  # the old code reused model A's passage vectors here


def test_a_changed_corpus_under_data_dir_rebuilds_the_index(o1e_checkpoint, scifact_dir, tmp_path, caplog):
    first = run(o1e_checkpoint, scifact_dir.parent, tmp_path, tmp_path / "indexes")
    corpus = scifact_dir / "corpus.jsonl"
    corpus.write_text("".join(corpus.read_text().splitlines(keepends=True)[:30]))
    with caplog.at_level(logging.WARNING):
        second = run(o1e_checkpoint, scifact_dir.parent, tmp_path, tmp_path / "indexes")
    assert "built from another model, corpus or settings" in caplog.text
    assert len(retrievers.read_docids(Path(first["index"]))) == 30 and first["index"] == second["index"]


def test_an_index_of_another_dimension_is_a_clear_error(o1e_checkpoint, scifact_dir, tmp_path, capsys):
    ids = [json.loads(line)["_id"] for line in (scifact_dir / "corpus.jsonl").read_text().splitlines()]
    from o1e_tevatron.core.vectors import write_vectors
    write_vectors(tmp_path / "shard.npz", np.eye(len(ids), 32, dtype=np.float32), ids)
    flags = ["--dataset", "beir/scifact/test", "--data-dir", str(scifact_dir.parent), "--retriever",
             f"o1e:{o1e_checkpoint}", "--mode", "fast", "--index-root", str(tmp_path / "indexes"),
             "--output-dir", str(tmp_path / "runs")]
    assert main(["import-shards", *flags, "--shards", str(tmp_path / "shard.npz")]) == 0
    assert main(flags) == 2
    assert "holds 32-d vectors but o1e:" in capsys.readouterr().err


def test_pickled_shards_need_the_opt_in(o1e_checkpoint, scifact_dir, tmp_path, capsys):
    from o1e_tevatron.core.vectors import write_vectors
    write_vectors(tmp_path / "shard.pkl", np.eye(2, 64, dtype=np.float32), ["a", "b"])
    flags = ["import-shards", "--dataset", "beir/scifact/test", "--data-dir", str(scifact_dir.parent), "--retriever",
             f"o1e:{o1e_checkpoint}", "--index-root", str(tmp_path / "indexes"), "--shards", str(tmp_path / "shard.pkl")]
    assert main(flags) == 2
    assert "is a pickle, and loading a pickle runs any code" in capsys.readouterr().err
    assert main([*flags, "--allow-pickle"]) == 0


def test_two_builders_of_one_index_build_it_once(tmp_path):
    """Two harness runs of one retriever and corpus at once (two arms' jobs in run.sh) once shared the index's
    .partial folder: the second one's start deleted the first one's half-written files. Now the second waits
    on a lock beside the index and reuses what the first built."""
    import threading
    import time
    from types import SimpleNamespace

    spec = retrievers.RetrieverSpec("bm25")
    index_dir = tmp_path / "indexes" / "corpus" / spec.slug()
    consumed = {"first": 0, "second": 0}

    def docs(name):
        for i in range(3):
            consumed[name] += 1
            time.sleep(0.5 if name == "first" else 0)  # the first build is slow: the second starts meanwhile
            yield SimpleNamespace(doc_id=f"d{i}", title="", text=f"passage number {i} about dna repair")

    built = {}

    def build(name):
        built[name] = retrievers.build_index(spec, docs(name), index_dir, "content-key-1", num_docs=3, threads=1)

    first = threading.Thread(target=build, args=("first",))
    first.start()
    time.sleep(0.2)
    build("second")
    first.join()
    assert built["first"] == built["second"] == index_dir
    assert consumed == {"first": 3, "second": 0}  # built once, by the first
    assert retrievers.reusable_index(index_dir, "content-key-1")
    assert retrievers.read_docids(index_dir) == ["d0", "d1", "d2"]
    assert sorted(p.name for p in index_dir.parent.iterdir()) == [index_dir.name, index_dir.name + ".lock"]


def test_a_search_leaves_the_thread_count_as_it_found_it(o1e_checkpoint, scifact_dir, tmp_path):
    """Pyserini's batch_search sets faiss's OpenMP threads, which are torch's: a job run with one thread went on
    encoding with --threads of them."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        retriever = retrievers.RetrieverSpec(f"o1e:{o1e_checkpoint}", query_options={"mode": "fast"})
        evaluate(EvalConfig("beir/scifact/test", retriever, data_dir=scifact_dir.parent, output_dir=tmp_path / "runs",
                            index_root=tmp_path / "indexes", hits=10, threads=3))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("budget, expected", [("1", 1), ("3", 3), ("", None), ("0", None), ("two", None)])
def test_the_search_threads_default_to_the_openmp_budget(monkeypatch, budget, expected):
    from o1e_pyserini.evaluation.cli import _default_threads
    monkeypatch.setenv("OMP_NUM_THREADS", budget)
    assert _default_threads() == (expected or min(8, os.cpu_count() or 1))
