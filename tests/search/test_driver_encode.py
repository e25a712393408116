"""python -m o1e_tevatron.driver.encode: shards, resuming by content, safe outputs, length flags."""
import logging
import pickle
import shutil

import numpy as np
import pytest

from o1e_tevatron.core.vectors import read_vectors
from o1e_tevatron.driver.encode import main
from o1e_tevatron.core.encoding import check_index_dir
from tests.search.conftest import with_other_weights


@pytest.fixture
def corpus_slice(demo_dir, tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join((demo_dir / "corpus.jsonl").read_text().splitlines(keepends=True)[:30]))
    return path


def encode(checkpoint, corpus, out, shard, num_shards=2, index=True, suffix="npz", extra=()):
    argv = ["--model_name_or_path", str(checkpoint), "--encode_in_path", str(corpus),
            "--encoded_save_path", str(out / f"corpus.{shard}.{suffix}"), "--encode_num_shard", str(num_shards),
            "--encode_shard_index", str(shard), "--per_device_eval_batch_size", "8", "--output_dir", str(out / "tr"),
            *extra]
    return main(argv + (["--faiss_index_dir", str(out / f"index{shard}")] if index else []))


def test_shards_cover_the_corpus_and_resume(llama_checkpoint, corpus_slice, tmp_path, caplog):
    for shard in (0, 1):
        encode(llama_checkpoint, corpus_slice, tmp_path, shard)
    lookups = [read_vectors(tmp_path / f"corpus.{s}.npz")[1] for s in (0, 1)]
    assert len(lookups[0]) == 15 and len(lookups[0] + lookups[1]) == len(set(lookups[0] + lookups[1])) == 30
    assert check_index_dir(tmp_path / "index1") == (15, 64)

    # A complete shard of the same model, input and settings is skipped without loading the model.
    before = (tmp_path / "corpus.0.npz").stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        encode(llama_checkpoint, corpus_slice, tmp_path, 0)
    assert "already encoded by this model and settings: skipping" in caplog.text
    assert (tmp_path / "corpus.0.npz").stat().st_mtime_ns == before

    # A torn file and an index whose docid file lost lines are written again.
    reps, lookup = read_vectors(tmp_path / "corpus.0.npz")
    data = (tmp_path / "corpus.0.npz").read_bytes()
    (tmp_path / "corpus.0.npz").write_bytes(data[: len(data) // 2])
    docid = tmp_path / "index0" / "docid"
    docid.write_text("".join(docid.read_text().splitlines(keepends=True)[:5]))
    encode(llama_checkpoint, corpus_slice, tmp_path, 0)
    again, again_lookup = read_vectors(tmp_path / "corpus.0.npz")
    assert again_lookup == lookup
    np.testing.assert_allclose(again, reps, atol=1e-5)
    assert check_index_dir(tmp_path / "index0") == (15, 64)


def test_another_model_in_the_same_folder_encodes_again(llama_checkpoint, corpus_slice, tmp_path, caplog):
    """Same ids, same path, other weights: the old code skipped the shard and kept model A's vectors."""
    folder = tmp_path / "ckpt"
    shutil.copytree(llama_checkpoint, folder)
    encode(folder, corpus_slice, tmp_path, 0, num_shards=1)
    first, _ = read_vectors(tmp_path / "corpus.0.npz")
    shutil.rmtree(folder)
    with_other_weights(llama_checkpoint, folder)
    with caplog.at_level(logging.WARNING):
        encode(folder, corpus_slice, tmp_path, 0, num_shards=1)
    assert "made from another model, input or settings" in caplog.text
    second, _ = read_vectors(tmp_path / "corpus.0.npz")
    assert not np.allclose(first, second, atol=1e-3)


def test_pickle_output_is_written_for_tevatron_but_never_read(llama_checkpoint, corpus_slice, tmp_path, monkeypatch):
    encode(llama_checkpoint, corpus_slice, tmp_path, 0, num_shards=1, index=False, suffix="pkl")
    with open(tmp_path / "corpus.0.pkl", "rb") as f:
        reps, lookup = pickle.load(f)  # the test made this file itself
    assert reps.shape == (30, 64) and len(lookup) == 30
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("the driver unpickled an output to check it"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("the driver unpickled an output to check it"))
    assert encode(llama_checkpoint, corpus_slice, tmp_path, 0, num_shards=1, index=False, suffix="pkl") == 0


def test_length_flags_are_applied(llama_checkpoint, corpus_slice, tmp_path):
    """--p_max_len used to be ignored: 2 passage tokens give other vectors than the checkpoint's 192."""
    encode(llama_checkpoint, corpus_slice, tmp_path / "full", 0, num_shards=1, index=False)
    encode(llama_checkpoint, corpus_slice, tmp_path / "short", 0, num_shards=1, index=False, extra=["--p_max_len", "2"])
    full, _ = read_vectors(tmp_path / "full" / "corpus.0.npz")
    short, _ = read_vectors(tmp_path / "short" / "corpus.0.npz")
    assert not np.allclose(full, short, atol=1e-3)
    # the same command again is a resume of the short encoding, not of the full one
    encode(llama_checkpoint, corpus_slice, tmp_path / "short", 0, num_shards=1, index=False, extra=["--p_max_len", "2"])
    np.testing.assert_array_equal(read_vectors(tmp_path / "short" / "corpus.0.npz")[0], short)


def test_empty_query_in_input_is_named(llama_checkpoint, tmp_path):
    topics = tmp_path / "q.tsv"
    topics.write_text("q1\tdna\nq2\t \n")
    with pytest.raises(ValueError, match="query q2 is empty"):
        main(["--model_name_or_path", str(llama_checkpoint), "--encode_in_path", str(topics), "--encode_is_qry",
              "--encoded_save_path", str(tmp_path / "q.npz"), "--output_dir", str(tmp_path / "tr")])


def test_vector_dtype_float16_halves_the_outputs_and_encodes_again(llama_checkpoint, corpus_slice, tmp_path, caplog):
    """--vector_dtype float16: the .npz holds float16, the index is faiss's fp16 scalar quantizer; switching
    the dtype is another setting, so a float32 shard is not reused for it."""
    import faiss

    encode(llama_checkpoint, corpus_slice, tmp_path, 0)
    f32 = read_vectors(tmp_path / "corpus.0.npz")[0]
    with caplog.at_level(logging.INFO):
        encode(llama_checkpoint, corpus_slice, tmp_path, 0, extra=["--vector_dtype", "float16"])
    assert "already encoded" not in caplog.text and "storing float16" in caplog.text
    with np.load(tmp_path / "corpus.0.npz") as data:
        assert data["vectors"].dtype == np.float16
    np.testing.assert_allclose(read_vectors(tmp_path / "corpus.0.npz")[0], f32, rtol=1e-3, atol=1e-3)
    index = faiss.read_index(str(tmp_path / "index0" / "index"))
    assert isinstance(index, faiss.IndexScalarQuantizer) and index.sq.qtype == faiss.ScalarQuantizer.QT_fp16
