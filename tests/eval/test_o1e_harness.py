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


def test_bfloat16_encoding_is_its_own_index_and_close_to_float32(o1e_checkpoint, demo_dir, tmp_path, index_root):
    """--dtype bfloat16 (3x float32 on AMX CPUs) builds another index than float32 (the dtype is in its key)
    whose vectors stay close to float32's; Pyserini's own encoders refuse it rather than ignore it."""
    import numpy as np

    from o1e_tevatron.core.vectors import read_vectors
    datasets.register_beir_folder(DEMO_ID, demo_dir, "test")
    records = {}
    for dtype in ("float32", "bfloat16"):
        assert o1e_eval.main(["--dataset", DEMO_ID, "--retriever", f"o1e:{o1e_checkpoint}", "--mode", "fast",
                              "--dtype", dtype, "--output-dir", str(tmp_path / dtype), "--index-root", str(index_root),
                              "--hits", "20", "--threads", "1"]) == 0
        records[dtype] = json.loads(next((tmp_path / dtype).glob("o1e__demo__test/*.metrics.json")).read_text())
    assert records["bfloat16"]["index"] != records["float32"]["index"]
    assert records["bfloat16"]["retriever"]["dtype"] == "bfloat16"
    vectors = {dtype: read_vectors(next((tmp_path / dtype).glob("o1e__demo__test/*.queries/embedding.npz")))[0]
               for dtype in records}
    cosine = (vectors["float32"] * vectors["bfloat16"]).sum(1) / (
        np.linalg.norm(vectors["float32"], axis=1) * np.linalg.norm(vectors["bfloat16"], axis=1))
    assert cosine.min() > 0.98 and not np.array_equal(vectors["float32"], vectors["bfloat16"])
    with pytest.raises(SystemExit, match="applies to o1e's own encoders"):
        o1e_eval.main(["--dataset", DEMO_ID, "--retriever", "auto:sentence-transformers/all-MiniLM-L6-v2",
                       "--dtype", "bfloat16"])
