"""python -m o1e_tevatron.driver.encode: shards, resuming, and refusing inconsistent outputs."""
import logging
import pickle

import numpy as np
import pytest

from o1e_tevatron.driver.encode import main
from o1e_tevatron.inference import check_index_dir


@pytest.fixture
def corpus_slice(demo_dir, tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join((demo_dir / "corpus.jsonl").read_text().splitlines(keepends=True)[:30]))
    return path


def encode(checkpoint, corpus, out, shard, num_shards=2, index=True):
    argv = ["--model_name_or_path", str(checkpoint), "--encode_in_path", str(corpus),
            "--encoded_save_path", str(out / f"corpus.{shard}.pkl"), "--encode_num_shard", str(num_shards),
            "--encode_shard_index", str(shard), "--per_device_eval_batch_size", "8", "--output_dir", str(out / "tr")]
    return main(argv + (["--faiss_index_dir", str(out / f"index{shard}")] if index else []))


def test_shards_cover_the_corpus_and_resume(llama_checkpoint, corpus_slice, tmp_path, caplog):
    for shard in (0, 1):
        encode(llama_checkpoint, corpus_slice, tmp_path, shard)
    lookups = [pickle.load(open(tmp_path / f"corpus.{s}.pkl", "rb"))[1] for s in (0, 1)]
    assert len(lookups[0]) == 15 and len(lookups[0] + lookups[1]) == len(set(lookups[0] + lookups[1])) == 30
    assert check_index_dir(tmp_path / "index1") == (15, 64)

    # A complete shard is skipped without even loading the model.
    before = (tmp_path / "corpus.0.pkl").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        encode(tmp_path / "no-such-model", corpus_slice, tmp_path, 0)
    assert "already encoded: skipping" in caplog.text
    assert (tmp_path / "corpus.0.pkl").stat().st_mtime_ns == before

    # A torn pickle and an index whose docid file lost lines are written again.
    reps, lookup = pickle.load(open(tmp_path / "corpus.0.pkl", "rb"))
    data = (tmp_path / "corpus.0.pkl").read_bytes()
    (tmp_path / "corpus.0.pkl").write_bytes(data[: len(data) // 2])
    docid = tmp_path / "index0" / "docid"
    docid.write_text("".join(docid.read_text().splitlines(keepends=True)[:5]))
    encode(llama_checkpoint, corpus_slice, tmp_path, 0)
    again, again_lookup = pickle.load(open(tmp_path / "corpus.0.pkl", "rb"))
    assert again_lookup == lookup
    np.testing.assert_allclose(again, reps, atol=1e-5)
    assert check_index_dir(tmp_path / "index0") == (15, 64)


def test_dimension_mismatch_with_a_kept_output(llama_checkpoint, corpus_slice, tmp_path):
    encode(llama_checkpoint, corpus_slice, tmp_path, 0, num_shards=1, index=False)
    reps, lookup = pickle.load(open(tmp_path / "corpus.0.pkl", "rb"))
    with open(tmp_path / "corpus.0.pkl", "wb") as f:  # complete for these ids, but from a 32-d model
        pickle.dump((np.zeros((len(lookup), 32), dtype=np.float32), lookup), f)
    with pytest.raises(ValueError, match="already holds 32-d vectors .* makes 64-d"):
        encode(llama_checkpoint, corpus_slice, tmp_path, 0, num_shards=1)


def test_empty_query_in_input_is_named(llama_checkpoint, tmp_path):
    topics = tmp_path / "q.tsv"
    topics.write_text("q1\tdna\nq2\t \n")
    with pytest.raises(ValueError, match="query q2 is empty"):
        main(["--model_name_or_path", str(llama_checkpoint), "--encode_in_path", str(topics), "--encode_is_qry",
              "--encoded_save_path", str(tmp_path / "q.pkl"), "--output_dir", str(tmp_path / "tr")])
