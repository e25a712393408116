"""Fusion of literal runs equals hand-computed rankings (interpolation of min-max scores, and RRF)."""
import pytest

from o1e_pyserini.evaluation.cli import main
from o1e_pyserini.evaluation import scoring
from o1e_pyserini.search.fusion import fuse

DENSE = {"q1": [("a", 0.9), ("b", 0.7), ("c", 0.5)], "q2": [("x", 2.0), ("y", 1.0)]}
BM25 = {"q1": [("c", 12.0), ("d", 10.0), ("a", 4.0)], "q2": [("y", 5.0), ("x", 3.0)]}


def test_interpolation_of_min_max_scores_by_hand():
    fused = fuse([DENSE, BM25], "interpolation", weight=0.3)
    # q1 dense normalised: a 1, b 0.5, c 0; bm25: c 1, d 0.75, a 0 -> a .3, b .15, c .7, d .525
    assert [d for d, _ in fused["q1"]] == ["c", "d", "a", "b"]
    assert [s for _, s in fused["q1"]] == pytest.approx([0.7, 0.525, 0.3, 0.15])
    # q2: x .3 + 0, y 0 + .7
    assert fused["q2"] == [("y", pytest.approx(0.7)), ("x", pytest.approx(0.3))]
    # the weight is not ignored: weight 0.9 puts the dense run's order first
    assert [d for d, _ in fuse([DENSE, BM25], "interpolation", weight=0.9)["q1"]] == ["a", "b", "c", "d"]


def test_rrf_by_hand_with_ties_broken_by_docid():
    fused = fuse([DENSE, BM25], "rrf", rrf_k=10)
    # q1: a 1/11 + 1/13, b 1/12, c 1/13 + 1/11, d 1/12: a and c tie, b and d tie -> doc id order
    assert [d for d, _ in fused["q1"]] == ["a", "c", "b", "d"]
    assert fused["q1"][0][1] == pytest.approx(1 / 11 + 1 / 13) and fused["q1"][2][1] == pytest.approx(1 / 12)
    assert [d for d, _ in fused["q2"]] == ["x", "y"]  # 1/11 + 1/12 each: a tie, x first
    assert fused["q2"][0][1] == pytest.approx(1 / 11 + 1 / 12)


def test_fuse_command_over_run_files(tmp_path, capsys):
    paths = [scoring.write_run(run, tmp_path / f"{name}.trec", tag=name) for name, run in
             (("dense", DENSE), ("bm25", BM25))]
    out = tmp_path / "hybrid.trec"
    assert main(["fuse", "--runs", *map(str, paths), "--fusion", "interpolation", "--fusion-weight", "0.3",
                 "--output", str(out)]) == 0
    fused = scoring.read_run(out)
    assert [d for d, _ in fused["q1"]] == ["c", "d", "a", "b"]
    assert main(["fuse", "--runs", str(paths[0]), "--fusion", "rrf", "--output", str(out)]) == 2
    assert "at least two runs" in capsys.readouterr().err


def test_hybrid_in_the_harness_equals_fusing_its_two_runs(o1e_checkpoint, demo_dir, tmp_path, index_root):
    from o1e_pyserini.evaluation import datasets
    from o1e_pyserini.evaluation.cli import main

    datasets.register_beir_folder("o1e/demo/test", demo_dir, "test")
    common = ["--dataset", "o1e/demo/test", "--output-dir", str(tmp_path), "--index-root", str(index_root),
              "--hits", "20", "--threads", "1"]
    dense = ["--retriever", f"o1e:{o1e_checkpoint}", "--mode", "fast"]
    for flags in (dense, ["--retriever", "bm25"], dense + ["--hybrid", "bm25", "--fusion-weight", "0.8"]):
        assert main(common + flags) == 0
    runs = {path.name: scoring.read_run(path) for path in (tmp_path / "o1e__demo__test").glob("*.trec")}
    hybrid = next(name for name in runs if "hybrid-bm25-interpolation-0.8" in name)
    dense_run = next(runs[name] for name in runs if name != hybrid and name.startswith("o1e"))
    expected = fuse([dense_run, runs["bm25.trec"]], "interpolation", 0.8, k=20)
    assert runs[hybrid].keys() == expected.keys()
    for q in expected:  # the run files hold 6 decimals (amplified by min-max): near-ties may swap
        got = runs[hybrid][q]
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        assert dict(got) == pytest.approx(dict(expected[q]), abs=1e-4)
    assert any([d for d, _ in expected[q]] != [d for d, _ in dense_run[q]] for q in expected)  # fusion changed it
