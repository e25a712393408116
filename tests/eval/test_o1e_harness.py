"""A tiny (untrained) o1e checkpoint through the same harness as BM25 and MiniLM: the demo slice with
and without thoughts, and real CoSQA dev and SciFact test (scores near chance: plumbing, not quality)."""
import json

import pytest

from o1e_pyserini.evaluation import datasets
from o1e_pyserini.evaluation.cli import main
from o1e_pyserini.evaluation.harness import EvalConfig, evaluate

DEMO_ID = "o1e/demo/test"


@pytest.mark.parametrize("mode_flags", [["--mode", "fast"],
                                        ["--mode", "think", "--num-thoughts", "2", "--max-thought-tokens", "4", "--seed", "0"]],
                         ids=["fast", "think"])
def test_o1e_checkpoint_scores_through_the_eval_command(o1e_checkpoint, demo_dir, tmp_path, index_root, mode_flags, capsys):
    datasets.register_beir_folder(DEMO_ID, demo_dir, "test")
    assert main(["--dataset", DEMO_ID, "--retriever", f"o1e:{o1e_checkpoint}", "--output-dir", str(tmp_path),
                          "--index-root", str(index_root), "--hits", "20", "--threads", "1", *mode_flags]) == 0
    record = json.loads(next(tmp_path.glob("o1e__demo__test/*.metrics.json")).read_text())
    assert record["num_queries"] == 48 and 0 <= record["metrics"]["nDCG@10"] <= 1
    assert record["retriever"]["query_options"]["mode"] == mode_flags[1]
    assert capsys.readouterr().out.startswith(f"{DEMO_ID}  o1e:{o1e_checkpoint}  nDCG@10=")


def test_a_corrupt_thought_cache_ends_in_one_line_and_is_left_as_it_is(o1e_checkpoint, demo_dir, tmp_path, index_root,
                                                                      capsys):
    """SQLite's 'file is not a database' stopped the harness with a raw traceback."""
    from o1e_pyserini.thinking.cache import DATABASE_NAME
    datasets.register_beir_folder(DEMO_ID, demo_dir, "test")
    (tmp_path / "cache").mkdir()
    garbage = tmp_path / "cache" / DATABASE_NAME
    garbage.write_bytes(b"\x00not sqlite" * 64)
    assert main(["--dataset", DEMO_ID, "--retriever", f"o1e:{o1e_checkpoint}", "--output-dir", str(tmp_path),
                          "--index-root", str(index_root), "--hits", "5", "--threads", "1", "--mode", "think",
                          "--num-thoughts", "1", "--max-thought-tokens", "4", "--seed", "0",
                          "--thought-cache", str(tmp_path / "cache")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"error: the thought cache at {garbage} is not a readable SQLite database (file is not a database): move it away")
    assert garbage.read_bytes() == b"\x00not sqlite" * 64


def test_o1e_flags_need_an_o1e_retriever():
    with pytest.raises(SystemExit, match="o1e: retrievers only"):
        main(["--dataset", DEMO_ID, "--retriever", "bm25", "--mode", "fast"])


@pytest.mark.parametrize("dataset, num_queries", [("o1e/cosqa/dev", 500), ("beir/scifact/test", 300)])
def test_o1e_checkpoint_on_real_data(o1e_checkpoint, shared_data, tmp_path, index_root, dataset, num_queries):
    """CoSQA dev and SciFact test, fast mode (~30 s each on 2 cores; think mode runs on the demo slice)."""
    from o1e_pyserini.evaluation import retrievers
    retriever = retrievers.RetrieverSpec(f"o1e:{o1e_checkpoint}", query_options={"mode": "fast"})
    record = evaluate(EvalConfig(dataset, retriever, data_dir=shared_data,
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
        assert main(["--dataset", DEMO_ID, "--retriever", f"o1e:{o1e_checkpoint}", "--mode", "fast",
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
        main(["--dataset", DEMO_ID, "--retriever", "auto:sentence-transformers/all-MiniLM-L6-v2",
                       "--dtype", "bfloat16"])


def test_inference_merges_the_adapter_into_its_base_without_moving_the_vectors(tiny_llama_dir, tmp_path):
    """Encoders load an adapter merged into its base (3x faster bfloat16 encoding than unmerged LoRA):
    float32 vectors equal the unmerged model's, and the trained LoRA really moves them off the base's."""
    import numpy as np
    import torch

    from o1e_pyserini.encoders.base import load_family_model
    from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel
    from o1e_tevatron.families.registry import load_model
    from o1e_tevatron.core.encoding import encode_sequences

    model = O1EModel.build(str(tiny_llama_dir), O1EConfig(), lora=True, lora_r=4, lora_alpha=8)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # a fresh adapter is the identity: give it weights, as training would
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    model.save(tmp_path / "ckpt")
    t = model.template
    sequences = [t.passage(t.tokenize("Cancer colon cells mutate")), t.plain_query(t.tokenize("dna repair"))]
    unmerged = load_model(tmp_path / "ckpt", dtype="float32").eval()
    merged = load_family_model(O1EModel, str(tmp_path / "ckpt"), "cpu", "float32", False, None)
    assert unmerged.is_peft and not merged.is_peft
    expected = encode_sequences(unmerged, sequences, 2)
    np.testing.assert_allclose(encode_sequences(merged, sequences, 2), expected, atol=1e-5)
    base = O1EModel.build(str(tiny_llama_dir), O1EConfig(), lora=False).eval()
    assert np.abs(encode_sequences(base, sequences, 2) - expected).max() > 1e-3
    bf16 = load_family_model(O1EModel, str(tmp_path / "ckpt"), "cpu", "bfloat16", False, None)
    assert next(bf16.parameters()).dtype == torch.bfloat16


def test_query_vector_flags_reach_the_harness_encoder(o1e_checkpoint, demo_dir, tmp_path, index_root):
    """--query-vector thoughts+query --renormalize: the saved query vectors are those of an encoder built
    with exactly those options (and differ from the default mean), so a dropped flag fails."""
    import numpy as np

    from o1e_pyserini.encoders.o1e import O1EQueryEncoder
    from o1e_tevatron.core.vectors import read_vectors
    datasets.register_beir_folder(DEMO_ID, demo_dir, "test")
    assert main(["--dataset", DEMO_ID, "--retriever", f"o1e:{o1e_checkpoint}", "--mode", "think",
                          "--num-thoughts", "2", "--max-thought-tokens", "4", "--seed", "6", "--temperature", "0.9",
                          "--query-vector", "thoughts+query", "--renormalize", "--no-thought-cache",
                          "--output-dir", str(tmp_path), "--index-root", str(index_root), "--hits", "5",
                          "--threads", "1"]) == 0
    saved, texts = read_vectors(next(tmp_path.glob("o1e__demo__test/*renormalized*.queries/embedding.npz")))
    settings = dict(num_thoughts=2, max_new_tokens=4, seed=6, temperature=0.9)
    literal = O1EQueryEncoder(str(o1e_checkpoint), query_vector="thoughts+query", renormalize=True, **settings)
    default = O1EQueryEncoder(str(o1e_checkpoint), **settings)
    np.testing.assert_allclose(saved, literal.encode_batch(texts), atol=1e-5)
    assert not np.allclose(saved, default.encode_batch(texts), atol=1e-3)
