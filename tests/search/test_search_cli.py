"""Pyserini's own CLIs with o1e registered, in subprocesses as users run them; Tevatron pickle interop."""
import pickle
import shutil

import faiss
import numpy as np
import pytest

from o1e_tevatron.core.encoding import write_index_dir

HITS = 10


def read_run(path):
    rows = [line.split() for line in path.read_text().splitlines()]
    assert rows and all(len(r) == 6 and r[1] == "Q0" for r in rows), "not a TREC run"
    by_query = {}
    for qid, _, docid, rank, score, _ in rows:
        by_query.setdefault(qid, []).append((int(rank), docid, float(score)))
    return by_query


def test_think_search_through_pyserini_cli_and_replay(cli, encoded_corpus, llama_checkpoint, topics_tsv, demo_queries,
                                                      tmp_path):
    run, saved = tmp_path / "run.txt", tmp_path / "queries"
    proc = cli("o1e_pyserini.search.faiss", "--index", encoded_corpus / "index", "--topics", topics_tsv,
                   "--output", run, "--encoder", llama_checkpoint, "--batch-size", 4, "--threads", 1,
                   "--hits", HITS, "--device", "cpu", "--o1e-num-thoughts", 2, "--o1e-max-thought-tokens", 8,
                   "--o1e-seed", 0, "--o1e-save-queries", saved)
    ranking = read_run(run)
    assert set(ranking) == set(demo_queries)
    corpus_ids = set((encoded_corpus / "index" / "docid").read_text().split())
    for hits in ranking.values():
        assert [h[0] for h in hits] == list(range(1, HITS + 1))
        assert [h[2] for h in hits] == sorted((h[2] for h in hits), reverse=True)
        assert {h[1] for h in hits} <= corpus_ids
    assert (saved / "embedding.npz").is_file() and (saved / "thoughts.jsonl").is_file(), proc.stderr[-2000:]

    # Re-scored from the saved vectors by Pyserini alone: no model, no generation, the same run.
    replay = tmp_path / "replay.txt"
    cli("o1e_pyserini.search.faiss", "--index", encoded_corpus / "index", "--topics", topics_tsv,
            "--output", replay, "--encoded-queries", saved, "--hits", HITS)
    assert replay.read_text() == run.read_text()


class _RunsCode:
    """Unpickling this runs code: it leaves a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_encoded_queries_file_is_not_loaded_without_the_flag(cli, encoded_corpus, topics_tsv, tmp_path):
    """Pyserini's --encoded-queries unpickled embedding.pkl: a file from elsewhere ran its code."""
    hostile, marker = tmp_path / "hostile", tmp_path / "code-ran"
    hostile.mkdir()
    (hostile / "embedding.pkl").write_bytes(pickle.dumps(_RunsCode(marker)))
    proc = cli("o1e_pyserini.search.faiss", "--index", encoded_corpus / "index", "--topics", topics_tsv,
               "--output", tmp_path / "run.txt", "--encoded-queries", hostile, "--hits", HITS, check=False)
    assert proc.returncode != 0 and not marker.exists()
    assert "is a pickle, and loading a pickle runs any code it carries" in proc.stderr.splitlines()[-1]


def test_tevatron_faiss_retriever_reads_the_pickles(cli, encoded_corpus, llama_checkpoint, topics_tsv, tmp_path):
    from o1e_tevatron.driver.encode import main

    assert main(["--model_name_or_path", str(llama_checkpoint), "--encode_in_path", str(topics_tsv),
                 "--encode_is_qry", "--encoded_save_path", str(tmp_path / "queries.pkl"),
                 "--output_dir", str(tmp_path / "trainer")]) == 0
    ranking = tmp_path / "rank.tsv"
    cli("tevatron.faiss_retriever", "--query_reps", tmp_path / "queries.pkl",
            "--passage_reps", encoded_corpus / "corpus.pkl", "--depth", HITS, "--save_ranking_to", ranking, "--save_text")
    rows = [line.split("\t") for line in ranking.read_text().splitlines()]
    query_reps, query_ids = pickle.load(open(tmp_path / "queries.pkl", "rb"))
    assert len(rows) == len(query_ids) * HITS

    # The pickle and the Pyserini index hold the same vectors in the same order.
    index = faiss.read_index(str(encoded_corpus / "index" / "index"))
    docids = (encoded_corpus / "index" / "docid").read_text().split()
    _, top = index.search(query_reps, 1)
    assert [r[1] for r in rows[::HITS]] == [docids[i] for i in top[:, 0]]


def test_pyserini_encode_uses_the_o1e_document_encoder(cli, encoded_corpus, llama_checkpoint, demo_dir, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join((demo_dir / "corpus.jsonl").read_text().splitlines(keepends=True)[:40]))
    cli("o1e_pyserini.encode", "input", "--corpus", corpus, "--fields", "title", "text",
            "output", "--embeddings", tmp_path / "index", "--to-faiss",
            "encoder", "--encoder", llama_checkpoint, "--fields", "title", "text", "--device", "cpu",
            "--dimension", 64, "--batch-size", 16)
    ours = faiss.read_index(str(tmp_path / "index" / "index")).reconstruct_n(0, 40)
    reps, lookup = pickle.load(open(encoded_corpus / "corpus.pkl", "rb"))
    assert (tmp_path / "index" / "docid").read_text().split() == lookup[:40]
    np.testing.assert_allclose(ours, reps[:40], atol=1e-5)


def search_error(cli, index_dir, topics, checkpoint, tmp_path):
    proc = cli("o1e_pyserini.search.faiss", "--index", index_dir, "--topics", topics, "--output",
                   tmp_path / "run.txt", "--encoder", checkpoint, "--o1e-mode", "fast", check=False)
    assert proc.returncode != 0
    return proc.stderr


def test_empty_query_is_named(cli, encoded_corpus, llama_checkpoint, tmp_path):
    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\tdna repair\nq-empty\t   \nq3\trna\n")
    assert "q-empty" in search_error(cli, encoded_corpus / "index", topics, llama_checkpoint, tmp_path)


def test_index_docid_mismatch_is_an_error(cli, encoded_corpus, llama_checkpoint, topics_tsv, tmp_path):
    broken = tmp_path / "index"
    shutil.copytree(encoded_corpus / "index", broken)
    docid = broken / "docid"
    docid.write_text("".join(docid.read_text().splitlines(keepends=True)[:-1]))
    assert "holds 600 vectors but docid lists 599 ids" in search_error(cli, broken, topics_tsv, llama_checkpoint, tmp_path)


def test_dimension_mismatch_is_an_error(cli, encoded_corpus, llama_checkpoint, topics_tsv, tmp_path):
    docids = (encoded_corpus / "index" / "docid").read_text().split()
    write_index_dir(tmp_path / "index32", np.random.default_rng(0).random((len(docids), 32), dtype=np.float32), docids)
    err = search_error(cli, tmp_path / "index32", topics_tsv, llama_checkpoint, tmp_path)
    assert "32-d vectors but the encoder makes 64-d" in err


def test_driver_shards_are_searched_by_the_cli_without_merging(cli, encoded_corpus, llama_checkpoint, demo_dir,
                                                               topics_tsv, tmp_path):
    """--encode_num_shard 3 --faiss_index_dir shards/i, then --index shards: the run of one flat index (same
    ids, same scores to float precision); a missing shard is named instead of searching part of the corpus."""
    from o1e_tevatron.driver.encode import main

    for shard in range(3):
        assert main(["--model_name_or_path", str(llama_checkpoint), "--encode_in_path", str(demo_dir / "corpus.jsonl"),
                     "--faiss_index_dir", str(tmp_path / "shards" / str(shard)), "--encode_num_shard", "3",
                     "--encode_shard_index", str(shard), "--per_device_eval_batch_size", "32",
                     "--output_dir", str(tmp_path / "trainer")]) == 0
    runs = {}
    for name, index in (("flat", encoded_corpus / "index"), ("sharded", tmp_path / "shards")):
        runs[name] = tmp_path / f"{name}.txt"
        cli("o1e_pyserini.search.faiss", "--index", index, "--topics", topics_tsv, "--output", runs[name],
            "--encoder", llama_checkpoint, "--batch-size", 4, "--threads", 1, "--hits", HITS, "--device", "cpu",
            "--o1e-mode", "fast")
    flat, sharded = read_run(runs["flat"]), read_run(runs["sharded"])
    assert flat.keys() == sharded.keys()
    for qid in flat:
        assert [h[1] for h in flat[qid]] == [h[1] for h in sharded[qid]]
        np.testing.assert_allclose([h[2] for h in flat[qid]], [h[2] for h in sharded[qid]], atol=1e-5)
    shutil.rmtree(tmp_path / "shards" / "1")
    proc = cli("o1e_pyserini.search.faiss", "--index", tmp_path / "shards", "--topics", topics_tsv, "--output",
               tmp_path / "x.txt", "--encoder", llama_checkpoint, "--o1e-mode", "fast", check=False)
    assert proc.returncode != 0 and "shards [1] of 3 are missing" in proc.stderr


def test_query_vector_flags_reach_the_encoder(cli, encoded_corpus, llama_checkpoint, topics_tsv, demo_queries, tmp_path):
    from o1e_pyserini.encoders.o1e import O1EQueryEncoder, load_encoded_queries

    saved = tmp_path / "queries"
    cli("o1e_pyserini.search.faiss", "--index", encoded_corpus / "index", "--topics", topics_tsv,
        "--output", tmp_path / "run.txt", "--encoder", llama_checkpoint, "--batch-size", 4, "--threads", 1,
        "--hits", HITS, "--device", "cpu", "--o1e-num-thoughts", 2, "--o1e-max-thought-tokens", 8, "--o1e-seed", 0,
        "--o1e-query-vector", "thoughts+query", "--o1e-renormalize", "--o1e-save-queries", saved)
    texts = list(demo_queries.values())
    encoder = O1EQueryEncoder(str(llama_checkpoint), num_thoughts=2, max_new_tokens=8, seed=0,
                              query_vector="thoughts+query", renormalize=True)
    expected = np.concatenate([encoder.encode_batch(texts[i:i + 4]) for i in range(0, len(texts), 4)])  # --batch-size 4
    got = load_encoded_queries(saved)
    np.testing.assert_allclose(np.stack([got[t] for t in texts]), expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1, atol=1e-5)


def test_adaptive_mode_through_pyserini_cli_takes_think_hits_for_uncertain_queries(
        cli, encoded_corpus, llama_checkpoint, topics_tsv, demo_queries, tmp_path):
    """--o1e-mode adaptive: the fast run decides (here the 3 least certain by margin think); those queries
    get exactly the think run's hits, the others the fast run's, and each decision is saved."""
    import json

    common = ["--index", encoded_corpus / "index", "--topics", topics_tsv, "--encoder", llama_checkpoint,
              "--batch-size", 4, "--threads", 1, "--hits", HITS, "--device", "cpu", "--o1e-num-thoughts", 2,
              "--o1e-max-thought-tokens", 6, "--o1e-seed", 3, "--o1e-no-thought-cache"]
    runs = {}
    for mode in ("fast", "think", "adaptive"):
        runs[mode] = tmp_path / f"{mode}.txt"
        extra = ["--o1e-think-rate", 0.25, "--o1e-save-queries", tmp_path / "adaptive"] if mode == "adaptive" else []
        cli("o1e_pyserini.search.faiss", *common, "--output", runs[mode], "--o1e-mode", mode, *extra)
    fast, think, adaptive = (read_run(runs[m]) for m in ("fast", "think", "adaptive"))
    margin = {q: hits[0][2] - hits[1][2] for q, hits in fast.items()}
    thinking = set(sorted(margin, key=lambda q: (margin[q], q))[:round(0.25 * len(fast))])
    assert len(thinking) == round(0.25 * len(demo_queries)) and set(adaptive) == set(fast)
    for q in fast:
        expected = think[q] if q in thinking else fast[q]
        assert [h[1] for h in adaptive[q]] == [h[1] for h in expected], q
        assert np.allclose([h[2] for h in adaptive[q]], [h[2] for h in expected], atol=1e-4), q
    assert think != fast  # else the check above could not tell the passes apart
    rows = [json.loads(line) for line in (tmp_path / "adaptive" / "thoughts.jsonl").read_text().splitlines()]
    assert {r["query_id"] for r in rows if r["adaptive"]["think"]} == thinking
    assert all(bool(r["thoughts"]) == r["adaptive"]["think"] for r in rows)


def test_adaptive_mode_needs_a_threshold_or_rate(cli, encoded_corpus, llama_checkpoint, topics_tsv, tmp_path):
    proc = cli("o1e_pyserini.search.faiss", "--index", encoded_corpus / "index", "--topics", topics_tsv, "--output",
               tmp_path / "run.txt", "--encoder", llama_checkpoint, "--o1e-mode", "adaptive", check=False)
    assert proc.returncode != 0 and "think threshold or a think rate" in proc.stderr


def test_hybrid_through_pyserini_cli_fuses_the_dense_run_with_bm25(cli, encoded_corpus, llama_checkpoint, topics_tsv,
                                                                    demo_dir, tmp_path):
    """--o1e-hybrid-index: --output is the fusion of the dense run (equal to a plain search's) and Pyserini's
    BM25 run (equal to pyserini.search.lucene's), both kept beside it; a non-default weight and RRF's k."""
    from tqdm import tqdm

    from o1e_pyserini.evaluation import datasets
    from o1e_pyserini.evaluation import scoring
    from o1e_pyserini.evaluation.retrievers import _build_lucene
    from o1e_pyserini.search.fusion import fuse

    lucene = tmp_path / "lucene"
    lucene.mkdir()
    _build_lucene(datasets.register_beir_folder("o1e/demo/test", demo_dir, "test").docs_iter(), lucene, 1,
                  tqdm(disable=True))
    common = ["--index", encoded_corpus / "index", "--topics", topics_tsv, "--encoder", llama_checkpoint,
              "--batch-size", 4, "--threads", 1, "--hits", HITS, "--device", "cpu", "--o1e-mode", "fast"]
    cli("o1e_pyserini.search.faiss", *common, "--output", tmp_path / "dense.txt")
    cli("o1e_pyserini.search.lucene", "--index", lucene, "--topics", topics_tsv, "--output", tmp_path / "bm25.txt",
        "--bm25", "--hits", HITS)
    dense, bm25 = (scoring.read_run(tmp_path / f"{name}.txt") for name in ("dense", "bm25"))
    for fusion, weight in (("interpolation", 0.3), ("rrf", None)):
        out = tmp_path / f"hybrid-{fusion}.txt"
        extra = ["--o1e-fusion-weight", weight] if weight is not None else ["--o1e-rrf-k", 7]
        cli("o1e_pyserini.search.faiss", *common, "--output", out, "--o1e-hybrid-index", lucene,
            "--o1e-fusion", fusion, *extra)
        assert scoring.read_run(f"{out}.dense") == dense and scoring.read_run(f"{out}.bm25") == bm25
        expected = fuse([dense, bm25], fusion, weight if weight is not None else 0.5, rrf_k=7, k=HITS)
        got = scoring.read_run(out)
        assert got.keys() == expected.keys() == dense.keys()
        for q in expected:  # 6 decimals in the run files: compare scores, and the ranking where not near-tied
            assert dict(got[q]) == pytest.approx(dict(expected[q]), abs=1e-4), q
        assert any([d for d, _ in got[q]] != [d for d, _ in dense[q]] for q in got)  # fusion changed the ranking


def test_hybrid_needs_an_existing_lucene_index_and_a_weight_in_range(cli, encoded_corpus, llama_checkpoint,
                                                                     topics_tsv, tmp_path):
    common = ["--index", encoded_corpus / "index", "--topics", topics_tsv, "--output", tmp_path / "run.txt",
              "--encoder", llama_checkpoint, "--o1e-mode", "fast"]
    proc = cli("o1e_pyserini.search.faiss", *common, "--o1e-hybrid-index", tmp_path / "missing", check=False)
    assert proc.returncode != 0 and "no such Lucene index directory" in proc.stderr
    proc = cli("o1e_pyserini.search.faiss", *common, "--o1e-hybrid-index", tmp_path, "--o1e-fusion-weight", 1.5,
               check=False)
    assert proc.returncode != 0 and "--o1e-fusion-weight must be in [0, 1]" in proc.stderr


def test_thought_cache_through_pyserini_cli_is_reused_by_the_next_run(cli, encoded_corpus, llama_checkpoint,
                                                                     topics_tsv, demo_queries, tmp_path):
    """A seeded think run fills the cache; the same search again reuses every query's thoughts (nothing
    generated) and scores as the first."""
    common = ["--index", encoded_corpus / "index", "--topics", topics_tsv, "--encoder", llama_checkpoint,
              "--batch-size", 4, "--threads", 1, "--hits", HITS, "--device", "cpu", "--o1e-num-thoughts", 2,
              "--o1e-max-thought-tokens", 5, "--o1e-seed", 7, "--o1e-temperature", 0.8,
              "--o1e-thought-cache", tmp_path / "cache"]
    first = cli("o1e_pyserini.search.faiss", *common, "--output", tmp_path / "first.txt")
    second = cli("o1e_pyserini.search.faiss", *common, "--output", tmp_path / "second.txt")
    n = len(demo_queries)
    assert f"thoughts of 0 queries reused, {n} generated" in first.stderr
    assert f"thoughts of {n} queries reused, 0 generated" in second.stderr
    first_run, second_run = read_run(tmp_path / "first.txt"), read_run(tmp_path / "second.txt")
    assert first_run.keys() == second_run.keys()
    for q in first_run:  # cached thoughts are re-encoded, fresh ones read from the KV cache: last digits differ
        assert np.allclose([h[2] for h in second_run[q]], [h[2] for h in first_run[q]], atol=1e-5), q
