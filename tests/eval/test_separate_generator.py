"""Table 4's separate-generator arm: RepLLaMA (a LoRA on a tiny Llama) reading thoughts written by
another LLM (the loopback OpenAI-compatible server), through the same harness as O1E."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from o1e_pyserini.evaluation import datasets
from o1e_pyserini.evaluation.cli import main
from o1e_pyserini.encoders.augmented import ThoughtAugmentedQueryEncoder
from o1e_pyserini.encoders.repllama import RepLlamaDocumentEncoder, RepLlamaQueryEncoder
from o1e_pyserini.thinking.backends import RecordedThoughts

DEMO_ID = "o1e/demo/test"
QUERIES = ["what causes colorectal cancer", "dna", "does aspirin reduce the risk of heart attacks in adults"]


@pytest.fixture(scope="module")
def repllama_adapter(tiny_llama_dir, tmp_path_factory):
    """A RepLLaMA-style LoRA adapter (random B, so it changes the vectors) without tokenizer files."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(AutoModel.from_pretrained(tiny_llama_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    out = tmp_path_factory.mktemp("repllama-adapter")
    model.save_pretrained(out)
    return out


def reference_vectors(tiny_llama_dir, adapter, texts):
    """One unpadded forward per text through the unmerged adapter: last (eos) state, normalised."""
    from peft import PeftModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = PeftModel.from_pretrained(AutoModel.from_pretrained(tiny_llama_dir), adapter).eval()
    out = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state
            out.append(F.normalize(hidden[0, -1], dim=-1).numpy())
    return np.stack(out)


def test_repllama_batches_equal_single_unmerged_forwards(tiny_llama_dir, repllama_adapter):
    queries = RepLlamaQueryEncoder(str(repllama_adapter), batch_size=2)
    np.testing.assert_allclose(queries.encode_batch(QUERIES),
                               reference_vectors(tiny_llama_dir, repllama_adapter, [f"query: {q}" for q in QUERIES]),
                               atol=1e-5)
    docs = RepLlamaDocumentEncoder(str(repllama_adapter), batch_size=2)
    got = docs.encode(["colon cells mutate", "sunlight"], titles=["Cancer", ""], max_length=512)
    np.testing.assert_allclose(got, reference_vectors(tiny_llama_dir, repllama_adapter,
                                                      ["passage: Cancer colon cells mutate", "passage: sunlight"]),
                               atol=1e-5)
    # the check can fail: the adapter moves the vectors away from the base model's
    base = RepLlamaQueryEncoder(str(tiny_llama_dir)).encode_batch(QUERIES[:1])
    assert float(base[0] @ queries.encode(QUERIES[0])) < 0.999


def test_thought_augmented_vector_is_the_mean_of_normalised_query_thought_vectors(repllama_adapter, tmp_path):
    thoughts = {QUERIES[0]: ["mutations pile up in colon cells", "diet and genes"], QUERIES[1]: ["a double helix"]}
    path = tmp_path / "thoughts.jsonl"
    path.write_text("".join(json.dumps({"text": q, "thoughts": ts}) + "\n" for q, ts in thoughts.items()))
    base = RepLlamaQueryEncoder(str(repllama_adapter))
    encoder = ThoughtAugmentedQueryEncoder(base, RecordedThoughts(path), batch_size=1)
    got = encoder.encode_batch(QUERIES[:2])
    for row, query in zip(got, QUERIES[:2]):
        expected = base.encode_batch([f"{query} {t}" for t in thoughts[query]]).mean(axis=0)  # rows already unit
        np.testing.assert_allclose(row, expected, atol=1e-6)
    assert encoder.encoded.thoughts == [thoughts[QUERIES[0]], thoughts[QUERIES[1]]]
    with pytest.raises(KeyError, match="no thoughts for 1 queries"):
        encoder.encode(QUERIES[2])


def test_separate_generator_run_through_the_harness_and_reused(repllama_adapter, tiny_llama_dir, demo_dir, tmp_path,
                                                              index_root):
    """Thoughts come once from a loopback OpenAI-compatible server, are saved beside the run, and a
    second run from the saved file reproduces the first run exactly."""
    from o1e_tevatron.synthesis.loopback_server import LoopbackServerArguments, serve_in_thread

    datasets.register_beir_folder(DEMO_ID, demo_dir, "test")
    common = ["--dataset", DEMO_ID, "--retriever", f"repllama:{repllama_adapter}", "--index-root", str(index_root),
              "--hits", "20", "--threads", "1", "--num-thoughts", "2", "--max-thought-tokens", "8"]
    with serve_in_thread(LoopbackServerArguments(model_name_or_path=str(tiny_llama_dir))) as url:
        assert main([*common, "--output-dir", str(tmp_path / "served"), "--thought-server", url,
                              "--thought-model", "loopback", "--temperature", "1.0", "--seed", "0"]) == 0
    (served,) = (tmp_path / "served").glob("*/*.metrics.json")
    record = json.loads(served.read_text())
    assert record["num_queries"] == 48 and 0 <= record["metrics"]["nDCG@10"] <= 1
    thoughts = [json.loads(line) for line in open(record["thoughts"])]
    assert len({t["query_id"] for t in thoughts}) == 48 and all(len(t["thoughts"]) == 2 for t in thoughts)

    assert main([*common, "--output-dir", str(tmp_path / "reused"), "--thoughts-file", record["thoughts"]]) == 0
    (reused,) = (tmp_path / "reused").glob("*/*.metrics.json")
    assert json.loads(reused.read_text())["per_query"] == record["per_query"]
    assert open(json.loads(reused.read_text())["run"]).read() != ""
    run_a = [line.split()[:5] for line in open(record["run"])]
    run_b = [line.split()[:5] for line in open(json.loads(reused.read_text())["run"])]
    assert run_a == run_b


def test_thought_flags_need_a_dense_retriever_or_a_source():
    with pytest.raises(SystemExit, match="o1e: retrievers only"):
        main(["--dataset", DEMO_ID, "--retriever", "bm25", "--thoughts-file", "t.jsonl"])
    with pytest.raises(SystemExit, match="need a thought source"):
        main(["--dataset", DEMO_ID, "--retriever", "repllama:x", "--num-thoughts", "2"])
    with pytest.raises(SystemExit, match="go together"):
        main(["--dataset", DEMO_ID, "--retriever", "repllama:x", "--thought-server", "http://x"])
    # fast mode embeds the plain query: a thought source there was silently ignored (the miniature's first
    # "teacher thoughts" arm scored exactly as fast mode)
    with pytest.raises(SystemExit, match="would be ignored"):
        main(["--dataset", DEMO_ID, "--retriever", "o1e:x", "--mode", "fast", "--thought-server", "http://x",
                       "--thought-model", "m"])
