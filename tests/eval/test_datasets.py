"""Dataset ids resolve; local copies (real files in ../shared/data) register under the usual ids."""
import gzip
import json

import ir_datasets
import pytest

from o1e_pyserini.evaluation import datasets


def _counts(dataset):
    return (sum(1 for _ in dataset.docs_iter()), sum(1 for _ in dataset.queries_iter()),
            sum(1 for _ in dataset.qrels_iter()))


@pytest.mark.parametrize("dataset_id", sorted(datasets.DATASETS))
def test_every_paper_id_resolves_to_a_loader(dataset_id, no_pyserini_cache):
    if dataset_id == datasets.COSQA_ID:  # ir_datasets lacks CosQA: it is local or absent
        with pytest.raises(datasets.DatasetUnavailableError, match="cosqa"):
            datasets.load(dataset_id)
        return
    dataset = datasets.load(dataset_id)  # no download happens until iteration
    assert dataset.has_docs() and dataset.has_queries() and dataset.has_qrels()


def test_beir_folder_registers_under_the_usual_id(shared_data):
    dataset = datasets.load("beir/scifact/test", data_dir=shared_data)
    assert ir_datasets.load("beir/scifact/test") is dataset
    assert _counts(dataset) == (5183, 300, 339)
    doc = next(dataset.docs_iter())
    assert doc.title and doc.default_text() == f"{doc.title} {doc.text}"


def test_cosqa_beir_folder_and_coclr_release_agree(shared_data, tmp_path, monkeypatch):
    beir = datasets.load(datasets.COSQA_ID, data_dir=shared_data)
    docs = {d.doc_id: d.text for d in beir.docs_iter()}
    queries = {q.query_id: q.text for q in beir.queries_iter()}
    qrels = {(r.query_id, r.doc_id) for r in beir.qrels_iter()}
    assert (len(docs), len(queries), len(qrels)) == (6267, 500, 500)

    # Rebuild the CoCLR release from the real data and read it back through the CoCLR loader.
    release = tmp_path / "cosqa"
    release.mkdir()
    (release / "code_idx_map.txt").write_text(json.dumps({text: int(d[1:]) for d, text in docs.items()}))
    rows = [{"idx": q, "doc": queries[q], "code": docs[d], "code_tokens": "", "retrieval_idx": int(d[1:]), "label": 1}
            for q, d in sorted(qrels)]
    (release / "cosqa-retrieval-dev-500.json").write_text(json.dumps(rows))
    monkeypatch.setattr(datasets, "O1E_CACHE", tmp_path / "cache")
    coclr = datasets.load(datasets.COSQA_ID, data_dir=tmp_path)
    assert {d.doc_id: d.text for d in coclr.docs_iter()} == docs
    assert {q.query_id: q.text for q in coclr.queries_iter()} == queries
    assert {(r.query_id, r.doc_id) for r in coclr.qrels_iter()} == qrels


def test_coclr_release_with_a_wrong_index_names_the_row(tmp_path):
    (tmp_path / "code_idx_map.txt").write_text(json.dumps({"def f(): pass": 0}))
    (tmp_path / "cosqa-retrieval-dev-500.json").write_text(
        json.dumps([{"idx": "cosqa-dev-7", "doc": "f", "code": "def f(): pass", "retrieval_idx": 3}]))
    with pytest.raises(ValueError, match="row 0 .cosqa-dev-7."):
        datasets.coclr_to_beir(tmp_path / "cosqa-retrieval-dev-500.json", tmp_path / "code_idx_map.txt", tmp_path / "out")


@pytest.mark.parametrize("dataset_id", sorted(i for i, info in datasets.DATASETS.items() if info.topics))
def test_official_topics_and_qrels_load(dataset_id, topics_dir, tmp_path, no_pyserini_cache):
    info = datasets.DATASETS[dataset_id]
    corpus = None
    if info.needs_local_corpus:
        corpus = tmp_path / "corpus.jsonl"
        corpus.write_text(json.dumps({"id": "d1", "content": "a BRIGHT-style document"}) + "\n")
    dataset = datasets.load(dataset_id, topics_dir=topics_dir, corpus=corpus)
    with gzip.open(topics_dir / "topics" / info.topics, "rt") if info.topics.endswith(".gz") \
            else open(topics_dir / "topics" / info.topics) as f:
        topic_ids = [line.split("\t", 1)[0] for line in f if line.strip()]
    assert [q.query_id for q in dataset.queries_iter()] == topic_ids
    assert all(q.text for q in dataset.queries_iter())
    judgments = sum(1 for line in open(topics_dir / "qrels" / info.qrels) if line.strip())
    assert sum(1 for _ in dataset.qrels_iter()) == judgments
    if corpus:
        assert [d.doc_id for d in dataset.docs_iter()] == ["d1"]


def test_missing_dataset_says_where_to_put_files(tmp_path, no_pyserini_cache):
    with pytest.raises(datasets.DatasetUnavailableError) as error:
        datasets.load(datasets.COSQA_ID, data_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "cosqa") in message and "corpus.jsonl" in message and "code_idx_map.txt" in message


def test_bright_without_a_corpus_asks_for_one(topics_dir, no_pyserini_cache):
    with pytest.raises(datasets.DatasetUnavailableError, match="--corpus"):
        datasets.load("bright/biology", topics_dir=topics_dir)


def test_a_bad_corpus_line_names_file_and_line(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "text": "fine"}\n{"_id": "d2"}\n')
    with pytest.raises(ValueError, match=r"corpus.jsonl:2"):
        list(datasets.JsonlDocs(corpus).docs_iter())


def test_a_failed_download_becomes_the_where_to_put_message(tmp_path, monkeypatch, no_pyserini_cache):
    """Neither cached nor local: ir_datasets' download fails (no network here: a dead proxy)."""
    from o1e_pyserini.evaluation.harness import EvalConfig, evaluate
    from o1e_pyserini.evaluation import retrievers
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "ir_datasets"))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    config = EvalConfig("beir/nfcorpus/test", retrievers.RetrieverSpec("bm25"), data_dir=tmp_path / "data",
                                 output_dir=tmp_path / "runs", index_root=tmp_path / "indexes")
    with pytest.raises(datasets.DatasetUnavailableError) as error:
        evaluate(config)
    message = str(error.value)
    assert "beir/nfcorpus/test" in message and str(tmp_path / "data" / "nfcorpus") in message
    assert "topics.beir-v1.0.0-nfcorpus.test.tsv.gz" in message


def test_identical_ids_are_ignored_only_where_beir_does():
    assert datasets.dataset_info("beir/arguana").ignore_identical_ids
    assert datasets.dataset_info("beir/quora/test").ignore_identical_ids
    assert not datasets.dataset_info("beir/scifact/test").ignore_identical_ids  # numeric ids on both sides


def test_scifact_dev_is_a_fixed_held_out_slice_of_scifact_train(shared_data):
    """o1e/scifact/dev: the committed 100 train queries with their train judgments, nothing else."""
    ids = datasets.scifact_dev_query_ids()
    assert len(ids) == 100
    dev = datasets.load(datasets.SCIFACT_DEV_ID, shared_data)
    train = datasets.load("beir/scifact/train", shared_data)
    assert {q.query_id for q in dev.queries_iter()} == ids
    judged = {(q.query_id, q.doc_id) for q in train.qrels_iter() if q.query_id in ids}
    assert {(q.query_id, q.doc_id) for q in dev.qrels_iter()} == judged and len(judged) >= 100
    assert ids <= {q.query_id for q in train.queries_iter()}
    assert ir_datasets.load(datasets.SCIFACT_DEV_ID) is dev


def test_a_local_corpus_counts_its_records(tmp_path):
    """The count was None: no progress total, a memory plan of "0 x d vectors", and ``auto`` never float16."""
    corpus = tmp_path / "corpus.jsonl.gz"
    with gzip.open(corpus, "wt") as f:
        f.write('{"_id": "a", "text": "one"}\n\n{"_id": "b", "text": "two"}\n{"_id": "c", "text": "three"}\n')
    assert datasets.JsonlDocs(corpus).docs_count() == 3 == len(list(datasets.JsonlDocs(corpus).docs_iter()))
