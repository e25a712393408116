"""The sharded top-k merge checked by value (issue 24's mutation campaign): literal per-shard lists
merged by score then docid, repeated rows dropped, short lists padded; each shard searched once unless
a tie at the cut may hide a better docid; the GPU copies used when present."""
import numpy as np
import pytest

from o1e_pyserini.search.sharded import ShardedIndex
from o1e_tevatron.core.encoding import write_index_dir

# 2-d unit-ish vectors; the query (1, 0) scores each by its first coordinate
SHARDS = [
    (["d5", "d1", "d9"], [[0.9, 0.1], [0.5, 0.0], [0.2, 0.0]]),
    (["d2", "d0"], [[0.5, 0.3], [0.7, 0.0]]),
    (["d3", "d4", "d8", "d7"], [[0.5, 0.9], [0.1, 0.0], [0.9, 0.5], [0.5, 0.0]]),
]
QUERY = np.array([[1.0, 0.0]], dtype=np.float32)


@pytest.fixture
def index(tmp_path):
    dirs = []
    for i, (ids, vectors) in enumerate(SHARDS):
        dirs.append(tmp_path / f"shard-{i}")
        write_index_dir(dirs[-1], np.array(vectors, dtype=np.float32), ids)
    return ShardedIndex(dirs, gpu=False)


def docids(index, rows):
    return [[index.docids[r] if r >= 0 else None for r in row] for row in rows]


def test_the_index_numbers_rows_across_shards(index):
    assert index.ntotal == 9 and index.offsets == [0, 3, 5, 9] and index.d == 2
    assert index.docids == ["d5", "d1", "d9", "d2", "d0", "d3", "d4", "d8", "d7"]


def test_search_ranks_by_score_then_docid_across_shards(index):
    scores, rows = index.search(QUERY, 9)
    # 0.9: d5, d8; 0.7: d0; 0.5: d1, d2, d3, d7; 0.2: d9; 0.1: d4
    assert docids(index, rows) == [["d5", "d8", "d0", "d1", "d2", "d3", "d7", "d9", "d4"]]
    assert scores.dtype == np.float32 and scores[0].tolist() == pytest.approx([0.9, 0.9, 0.7, 0.5, 0.5, 0.5, 0.5, 0.2, 0.1])



def test_float64_and_strided_queries_search_like_float32_ones(index):  # faiss itself takes float32 only
    wide = np.repeat(np.asarray(QUERY, dtype=np.float64), 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous
    for got, want in zip(index.search(wide, 9), index.search(QUERY, 9)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("k, expected", [(1, ["d5"]), (2, ["d5", "d8"]), (4, ["d5", "d8", "d0", "d1"]),
                                         (6, ["d5", "d8", "d0", "d1", "d2", "d3"])])
def test_a_cut_inside_a_tie_keeps_the_smallest_docids(index, k, expected):
    scores, rows = index.search(QUERY, k)
    assert docids(index, rows) == [expected] and rows.shape == (1, k)


def test_past_the_corpus_rows_are_minus_one_and_scores_minus_infinity(index):
    scores, rows = index.search(QUERY, 11)
    assert rows[0, 9:].tolist() == [-1, -1] and scores[0, 9:].tolist() == [-np.inf, -np.inf]
    assert rows.dtype == np.int64 and scores.dtype == np.float32


def test_a_shard_is_searched_at_most_as_deep_as_it_is_and_its_rows_are_global(index):
    scores, rows = index._shard_search(2, QUERY, 10)  # faiss orders the tie at 0.5 (rows 5, 8) as it likes
    assert rows[0, 0] == 7 and sorted(rows[0, 1:3]) == [5, 8] and rows[0, 3] == 6
    assert scores[0].tolist() == pytest.approx([0.9, 0.5, 0.5, 0.1])
    scores, rows = index._shard_search(1, QUERY, 1)
    assert rows.tolist() == [[4]]


def test_each_shard_is_searched_once_when_no_tie_reaches_the_cut(index, monkeypatch):
    calls = []
    search = index._shard_search
    monkeypatch.setattr(index, "_shard_search", lambda s, q, k: calls.append((s, len(q), k)) or search(s, q, k))
    index.search(QUERY, 9)  # every shard returned whole: nothing hidden
    assert calls == [(0, 1, 9), (1, 1, 9), (2, 1, 9)]
    calls.clear()
    index.search(np.array([[0.0, 1.0]], dtype=np.float32), 1)  # d3 at 0.9 is the cut: only its shard may hide a tie
    assert calls == [(0, 1, 1), (1, 1, 1), (2, 1, 1), (2, 1, 2)]


def test_a_shard_cut_at_a_tie_is_searched_again_deeper(index, monkeypatch):
    calls = []
    search = index._shard_search
    monkeypatch.setattr(index, "_shard_search", lambda s, q, k: calls.append((s, k)) or search(s, q, k))
    # query (0, 1), k=2: d3 0.9 and d8 0.5 (both shard 2) make the cut 0.5; shard 2 was cut at 0.5, so it
    # may hide another 0.5 with a smaller docid and is searched again (whole: 4); shards 0 (0.1, 0.0) and
    # 1 (0.3, 0.0) end below the cut and are not
    scores, rows = index.search(np.array([[0.0, 1.0]], dtype=np.float32), 2)
    assert docids(index, rows) == [["d3", "d8"]]
    assert calls == [(0, 2), (1, 2), (2, 2), (2, 4)]


class FakeGpuIndex:
    def __init__(self, scores, rows):
        self.scores, self.rows = np.array(scores, dtype=np.float32), np.array(rows, dtype=np.int64)

    def search(self, queries, k):
        return self.scores[:, :k], self.rows[:, :k]


def test_the_gpu_copies_are_searched_when_present_and_their_missing_rows_stay_missing(index):
    index.on_gpus = [FakeGpuIndex([[0.95, 0.3, -np.inf]], [[2, 0, -1]]), FakeGpuIndex([[0.8, 0.1]], [[1, 0]]),
                     FakeGpuIndex([[0.2, 0.1, -np.inf, -np.inf]], [[0, 1, -1, -1]])]
    scores, rows = index._shard_search(0, QUERY, 3)
    assert rows.tolist() == [[2, 0, -1]]
    scores, rows = index._shard_search(2, QUERY, 4)
    assert rows.tolist() == [[5, 6, -1, -1]]
    scores, rows = index.search(QUERY, 4)
    assert docids(index, rows) == [["d9", "d0", "d5", "d3"]]
    assert scores[0].tolist() == pytest.approx([0.95, 0.8, 0.3, 0.2])


# --- the merge itself --------------------------------------------------------------------------
def test_merge_of_literal_lists(index):
    a = (np.array([[0.9, 0.5, 0.5]], dtype=np.float32), np.array([[0, 1, 2]]))  # d5 d1 d9
    b = (np.array([[0.5, 0.4]], dtype=np.float32), np.array([[3, -1]]))  # d2, then nothing
    scores, rows = index._merge([a, b], 4)
    assert rows.tolist() == [[0, 1, 3, 2]] and scores.tolist() == [[pytest.approx(0.9), 0.5, 0.5, 0.5]]
    scores, rows = index._merge([a, b], 6)
    assert rows.tolist() == [[0, 1, 3, 2, -1, -1]] and scores[0, 4:].tolist() == [-np.inf, -np.inf]
    assert scores.dtype == np.float32


def test_merge_drops_a_row_that_comes_twice(index):
    first = (np.array([[0.9, 0.5]], dtype=np.float32), np.array([[0, 3]]))
    again = (np.array([[0.5, 0.5, 0.2]], dtype=np.float32), np.array([[1, 3, 2]]))
    scores, rows = index._merge([first, again], 4)
    assert rows.tolist() == [[0, 1, 3, 2]]
    scores, rows = index._merge([first, again], 6)
    assert rows.tolist() == [[0, 1, 3, 2, -1, -1]]
    assert scores[0, 4:].tolist() == [-np.inf, -np.inf]  # a dropped repeat's place is empty, score and row
    zero = (np.array([[0.9, 0.5]], dtype=np.float32), np.array([[0, 3]]))  # row 0 is a row like any other
    scores, rows = index._merge([zero, (np.array([[0.9]], dtype=np.float32), np.array([[0]]))], 3)
    assert rows.tolist() == [[0, 3, -1]] and scores[0, 2] == -np.inf


def test_merge_keeps_missing_rows_missing_at_the_end(index):
    part = (np.array([[0.1, 5.0, 7.0]], dtype=np.float32), np.array([[4, -1, -1]]))
    scores, rows = index._merge([part], 3)
    assert rows.tolist() == [[4, -1, -1]] and scores.tolist() == [[pytest.approx(0.1), -np.inf, -np.inf]]


def test_merge_of_several_queries_is_row_by_row(index):
    part = (np.array([[0.5, 0.5], [0.1, 0.9]], dtype=np.float32), np.array([[8, 7], [5, 6]]))  # d7 d8 / d3 d4
    scores, rows = index._merge([part], 2)
    assert rows.tolist() == [[8, 7], [6, 5]]
