"""Sharded exact search equals one flat search; float16 storage agrees with float32; 1M vectors in bounded memory."""
import json
import os
import subprocess
import sys
import textwrap

import faiss
import numpy as np
import pytest

from o1e_pyserini.search.sharded import ShardedIndex, as_flat, shard_dirs, write_shards_file
from o1e_tevatron.core.vectors import flat_index, memory_plan, storage_dtype, write_record
from o1e_tevatron.core.encoding import write_index_dir


def flat_reference(vectors, docids, queries, k):
    """One IndexFlatIP over all vectors, every row scored, ranked by score then docid."""
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    scores, rows = index.search(queries, len(vectors))
    ids = np.array(docids)[rows]
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(rows, order, 1)


def write_shards(folder, vectors, docids, bounds, dtype="float32"):
    dirs = []
    for i, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        dirs.append(folder / f"shard-{i}")
        write_index_dir(dirs[-1], vectors[start:end], docids[start:end], dtype=dtype)
    write_shards_file(folder, dirs)
    return dirs


@pytest.fixture
def tied_corpus():
    """300 vectors with many exact ties (rows repeated across shards, docids not in row order)."""
    rng = np.random.default_rng(7)
    distinct = rng.standard_normal((60, 24)).astype(np.float32)
    vectors = distinct[rng.integers(0, 60, 300)]
    docids = [f"d{n}" for n in rng.permutation(300)]
    queries = rng.standard_normal((25, 24)).astype(np.float32)
    return vectors, docids, queries


def test_sharded_search_equals_flat_search_with_ties(tmp_path, tied_corpus):
    vectors, docids, queries = tied_corpus
    write_shards(tmp_path, vectors, docids, [0, 37, 150, 151, 300])  # uneven, one shard of one vector
    for k in (1, 7, 10, 300, 400):
        scores, rows = ShardedIndex(shard_dirs(tmp_path), gpu=False).search(queries, k)
        ref_scores, ref_rows = flat_reference(vectors, docids, queries, min(k, 300))
        np.testing.assert_array_equal(rows[:, :300], ref_rows)
        np.testing.assert_array_equal(scores[:, :300], ref_scores)
        assert (rows[:, 300:] == -1).all()


def test_encode_driver_shards_are_found_and_checked(tmp_path, tied_corpus):
    """Shard directories of the encode driver (records "shard i of n") search without a listing; one missing is named."""
    vectors, docids, queries = tied_corpus
    for i, (start, end) in enumerate([(0, 100), (100, 200), (200, 300)]):
        write_index_dir(tmp_path / str(i), vectors[start:end], docids[start:end])
        write_record(tmp_path / str(i), "fp", docids[start:end], 24, shard=[i, 3])
    scores, rows = ShardedIndex(shard_dirs(tmp_path), gpu=False).search(queries, 10)
    np.testing.assert_array_equal(rows, flat_reference(vectors, docids, queries, 10)[1])
    import shutil
    shutil.rmtree(tmp_path / "1")
    with pytest.raises(ValueError, match=r"shards \[1\] of 3 are missing"):
        shard_dirs(tmp_path)


def test_float16_rankings_agree_with_float32(tmp_path):
    """Float16 storage on 768-d unit vectors: the same top hit, top-10 overlap >= 0.99 and scores within 2e-4 of
    float32 (measured: overlap 1.0, max score difference 4.4e-5; an 8-bit scalar quantizer misses the bound)."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((20000, 768)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.integers(0, 20000, 50)] + 0.5 * rng.standard_normal((50, 768)).astype(np.float32) / 28
    docids = [str(i) for i in range(20000)]
    write_shards(tmp_path / "f16", vectors, docids, [0, 10000, 20000], dtype="float16")
    write_shards(tmp_path / "f32", vectors, docids, [0, 10000, 20000], dtype="float32")
    s16, r16 = ShardedIndex(shard_dirs(tmp_path / "f16"), gpu=False).search(queries, 10)
    s32, r32 = ShardedIndex(shard_dirs(tmp_path / "f32"), gpu=False).search(queries, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(r16, r32)])
    assert (r16[:, 0] == r32[:, 0]).all()
    assert overlap >= 0.99, overlap
    assert 0 < np.abs(s16 - s32).max() < 2e-4  # > 0: really stored in float16
    assert os.path.getsize(tmp_path / "f16/shard-0/index") < 0.51 * os.path.getsize(tmp_path / "f32/shard-0/index")
    # what the GPU path clones: the float16 shard decoded into a flat index, the same scores (chunked decode)
    shard = faiss.read_index(str(tmp_path / "f16/shard-1/index"))
    np.testing.assert_array_equal(as_flat(shard, chunk=3001).search(queries, 10)[1], shard.search(queries, 10)[1])


def test_storage_dtype_and_memory_plan():
    assert storage_dtype("auto", 999_999) == "float32" and storage_dtype("auto", 8_841_823) == "float16"
    assert storage_dtype("float32", 8_841_823) == "float32"
    with pytest.raises(ValueError, match="vector dtype"):
        storage_dtype("int8", 10)
    plan = memory_plan(8_841_823, 4096, "float16")
    assert "float32 134.92 GiB, float16 67.46 GiB, PQ64x8 0.53 GiB" in plan and plan.endswith("storing float16")
    assert isinstance(flat_index(8, "float16"), faiss.IndexScalarQuantizer)


MILLION = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    from pathlib import Path
    from o1e_pyserini.search.sharded import ShardedIndex, shard_dirs, write_shards_file
    from o1e_tevatron.core.encoding import write_index_dir

    folder, shards, per_shard, dim = Path(sys.argv[1]), 8, 125_000, 768
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux: KiB)
    start = peak()
    rng = np.random.default_rng(0)
    dirs = []
    for i in range(shards):  # one shard in memory at a time
        vectors = rng.standard_normal((per_shard, dim), dtype=np.float32)
        dirs.append(folder / f"shard-{i}")
        write_index_dir(dirs[-1], vectors, [f"p{i}-{j}" for j in range(per_shard)], dtype="float16")
        del vectors
    written = peak()
    probe = np.random.default_rng(0).standard_normal((per_shard, dim), dtype=np.float32)[[5, 77]]  # rows of shard 0
    write_shards_file(folder, dirs)
    began = time.time()
    index = ShardedIndex(shard_dirs(folder), gpu=False)
    scores, rows = index.search(probe, 10)
    print(json.dumps({"ntotal": index.ntotal, "top": [index.docids[r] for r in rows[:, 0]], "start_mib": start,
                      "after_write_mib": written, "after_search_mib": peak(), "search_s": time.time() - began}))
""")


def test_million_vectors_in_eight_float16_shards_search_in_bounded_memory(tmp_path):
    """1M x 768 float16 = 1.43 GiB on disk; peak RSS grows by about one shard's float32 vectors (366 MiB)
    plus its float16 index, never by the whole corpus (float32: 2.9 GiB)."""
    proc = subprocess.run([sys.executable, "-c", MILLION, str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "2"}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(result)
    assert result["ntotal"] == 1_000_000 and result["top"] == ["p0-5", "p0-77"]
    assert sum(f.stat().st_size for f in tmp_path.glob("shard-*/index")) > 1.4 * 2**30
    assert result["after_search_mib"] - result["start_mib"] < 900  # the whole corpus in float16 would be 1465
