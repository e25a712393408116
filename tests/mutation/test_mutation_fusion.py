"""Fusion checked by value (issue 24's mutation campaign): the TREC run o1e hands to Pyserini, the run it
reads back, the defaults, ``depth`` / ``k``, and the refusals, each with literal numbers."""
import pandas as pd
import pytest
from pyserini.trectools import TrecRun

from o1e_pyserini.search.fusion import from_trec_run, fuse, to_trec_run

DENSE = {"q1": [("a", 0.9), ("b", 0.7), ("c", 0.5)], "q2": [("x", 2.0), ("y", 1.0)]}
BM25 = {"q1": [("c", 12.0), ("d", 10.0), ("a", 4.0)], "q2": [("y", 5.0), ("x", 3.0)]}


def test_a_run_becomes_a_trec_run_ranked_from_one():
    data = to_trec_run({"q1": [("a", 0.9), ("b", 0.7)], "q2": [("x", 2.0)]}).run_data
    assert list(data.columns) == ["topic", "q0", "docid", "rank", "score", "tag"]
    assert data.values.tolist() == [["q1", "Q0", "a", 1, 0.9, "o1e"], ["q1", "Q0", "b", 2, 0.7, "o1e"],
                                    ["q2", "Q0", "x", 1, 2.0, "o1e"]]


def test_a_trec_run_is_read_back_with_string_ids_and_float_scores_in_its_order():
    trec = TrecRun()
    trec.run_data = pd.DataFrame([(7, "Q0", 11, 1, 3, "t"), (7, "Q0", "b", 2, 2.5, "t"), ("q2", "Q0", "x", 1, 1, "t")],
                                 columns=["topic", "q0", "docid", "rank", "score", "tag"])
    run = from_trec_run(trec)
    assert run == {"7": [("11", 3.0), ("b", 2.5)], "q2": [("x", 1.0)]}
    assert all(type(s) is float and type(d) is str for hits in run.values() for d, s in hits)
    assert list(run) == ["7", "q2"]


def test_a_run_survives_the_round_trip():
    assert from_trec_run(to_trec_run(DENSE)) == DENSE


def test_rrf_ranks_count_from_one_and_rrf_k_defaults_to_60():
    fused = fuse([DENSE, BM25], "rrf")
    assert fused == fuse([DENSE, BM25], "rrf", rrf_k=60)
    assert fused["q1"] == [("a", pytest.approx(1 / 61 + 1 / 63)), ("c", pytest.approx(1 / 63 + 1 / 61)),
                           ("b", pytest.approx(1 / 62)), ("d", pytest.approx(1 / 62))]


def test_interpolation_is_the_default_with_an_even_weight():
    fused = fuse([DENSE, BM25])
    # q1 normalised: dense a 1, b .5, c 0; bm25 c 1, d .75, a 0 -> a .5, b .25, c .5, d .375
    assert fused["q1"] == [("a", pytest.approx(0.5)), ("c", pytest.approx(0.5)), ("d", pytest.approx(0.375)),
                           ("b", pytest.approx(0.25))]
    assert fused == fuse([DENSE, BM25], "interpolation", weight=0.5)


@pytest.mark.parametrize("weight, q1", [(0.0, ["c", "d", "a", "b"]), (1.0, ["a", "b", "c", "d"])])
def test_the_weights_at_the_ends_of_the_range_are_accepted(weight, q1):
    fused = fuse([DENSE, BM25], "interpolation", weight=weight)
    assert [d for d, _ in fused["q1"]] == q1
    assert [s for _, s in fused["q1"]][0] == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["interpolation", "rrf"])
def test_depth_reads_that_many_hits_of_each_run_and_k_keeps_that_many(method):
    shallow = fuse([DENSE, BM25], method, depth=1)
    assert sorted(d for d, _ in shallow["q1"]) == ["a", "c"] and sorted(d for d, _ in shallow["q2"]) == ["x", "y"]
    top = fuse([DENSE, BM25], method, k=1)
    assert [len(hits) for hits in top.values()] == [1, 1]
    assert top["q1"] == fuse([DENSE, BM25], method)["q1"][:1]


def test_three_runs_fuse_with_rrf():
    fused = fuse([DENSE, BM25, {"q1": [("b", 1.0)]}], "rrf", rrf_k=10)
    assert fused["q1"][0] == ("b", pytest.approx(1 / 12 + 1 / 11))


@pytest.mark.parametrize("runs, method, weight, message", [
    ([DENSE, BM25], "sum", 0.5, "^fusion must be one of \\('interpolation', 'rrf'\\), not 'sum'$"),
    ([DENSE], "rrf", 0.5, "^fusion needs at least two runs, got 1$"),
    ([DENSE], "interpolation", 0.5, "^fusion needs at least two runs, got 1$"),
    ([DENSE, BM25, DENSE], "interpolation", 0.5,
     "^interpolation weighs exactly two runs with a weight in \\[0, 1\\], got 3 runs, weight 0.5$"),
    ([DENSE, BM25], "interpolation", 1.01, "got 2 runs, weight 1.01$"),
    ([DENSE, BM25], "interpolation", -0.01, "got 2 runs, weight -0.01$"),
])
def test_refusals_name_what_is_wrong(runs, method, weight, message):
    with pytest.raises(ValueError, match=message):
        fuse(runs, method, weight=weight)
