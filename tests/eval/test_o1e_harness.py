"""A tiny (untrained) o1e checkpoint through the same harness as BM25 and MiniLM: the demo slice with
and without thoughts, and real CoSQA dev and SciFact test (scores near chance: plumbing, not quality)."""
import json

import pytest

from o1e_pyserini import datasets
from o1e_pyserini import eval as o1e_eval

DEMO_ID = "o1e/demo/test"


@pytest.mark.parametrize("mode_flags", [["--mode", "fast"],
                                        ["--mode", "think", "--num-thoughts", "2", "--max-thought-tokens", "4", "--seed", "0"]],
                         ids=["fast", "think"])
def test_o1e_checkpoint_scores_through_the_eval_command(o1e_checkpoint, demo_dir, tmp_path, index_root, mode_flags, capsys):
    datasets.register_beir_folder(DEMO_ID, demo_dir, "test")
    assert o1e_eval.main(["--dataset", DEMO_ID, "--retriever", f"o1e:{o1e_checkpoint}", "--output-dir", str(tmp_path),
                          "--index-root", str(index_root), "--hits", "20", "--threads", "1", *mode_flags]) == 0
    record = json.loads(next(tmp_path.glob("o1e__demo__test/*.metrics.json")).read_text())
    assert record["num_queries"] == 48 and 0 <= record["metrics"]["nDCG@10"] <= 1
    assert record["retriever"]["query_options"]["mode"] == mode_flags[1]
    assert capsys.readouterr().out.startswith(f"{DEMO_ID}  o1e:{o1e_checkpoint}  nDCG@10=")


def test_o1e_flags_need_an_o1e_retriever():
    with pytest.raises(SystemExit, match="o1e: retrievers only"):
        o1e_eval.main(["--dataset", DEMO_ID, "--retriever", "bm25", "--mode", "fast"])


@pytest.mark.parametrize("dataset, num_queries", [("o1e/cosqa/dev", 500), ("beir/scifact/test", 300)])
def test_o1e_checkpoint_on_real_data(o1e_checkpoint, shared_data, tmp_path, index_root, dataset, num_queries):
    """CoSQA dev and SciFact test, fast mode (~30 s each on 2 cores; think mode runs on the demo slice)."""
    from o1e_pyserini.evaluation import retrievers
    retriever = retrievers.RetrieverSpec(f"o1e:{o1e_checkpoint}", query_options={"mode": "fast"})
    record = o1e_eval.evaluate(o1e_eval.EvalConfig(dataset, retriever, data_dir=shared_data,
                                                   output_dir=tmp_path, index_root=index_root, hits=100))
    assert record["num_queries"] == num_queries and 0 <= record["metrics"]["nDCG@10"] <= 1
