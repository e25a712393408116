"""Fixtures of the search side: tiny o1e checkpoints, a demo query TSV, the demo corpus encoded once."""
import json
import os
import subprocess
import sys

import pytest
import torch

from o1e_tevatron.families.o1e.model import O1EConfig, O1EModel

# The CI machines are small and shared: more than one intra-op thread per process makes the tiny
# models tens of times slower under contention.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


def save_checkpoint(base_dir, out_dir):
    model = O1EModel.build(str(base_dir), O1EConfig(), lora=True, lora_r=4, lora_alpha=8)
    model.save(out_dir)
    return out_dir


def with_other_weights(checkpoint, out_dir):
    """A copy of ``checkpoint`` whose safetensors weights are all changed (as if retrained), same names."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(checkpoint, out_dir)
    for path in out_dir.glob("*.safetensors"):
        save_file({name: t + 0.05 * torch.randn_like(t) for name, t in load_file(path).items()}, path)
    return out_dir


def run_cli(*args, check=True, cwd=None):
    """python -m ARGS in a subprocess, as a user would run it; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    if check and proc.returncode != 0:
        raise AssertionError(f"python -m {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def o1e_checkpoint(tiny_model_dir, tmp_path_factory):
    """An (untrained) o1e adapter checkpoint of each tiny architecture."""
    return save_checkpoint(tiny_model_dir, tmp_path_factory.mktemp(f"o1e-{tiny_model_dir.name}"))


@pytest.fixture(scope="session")
def llama_checkpoint(tiny_llama_dir, tmp_path_factory):
    return save_checkpoint(tiny_llama_dir, tmp_path_factory.mktemp("o1e-llama-ckpt"))


@pytest.fixture(scope="session")
def demo_queries(demo_dir):
    """The first 8 demo queries as {id: text}."""
    with open(demo_dir / "queries.jsonl") as f:
        rows = [json.loads(line) for line in f][:8]
    return {row["_id"]: row["text"] for row in rows}


@pytest.fixture(scope="session")
def topics_tsv(demo_queries, tmp_path_factory):
    path = tmp_path_factory.mktemp("topics") / "topics.tsv"
    path.write_text("".join(f"{qid}\t{text}\n" for qid, text in demo_queries.items()))
    return path


@pytest.fixture(scope="session")
def encoded_corpus(llama_checkpoint, demo_dir, tmp_path_factory):
    """The demo corpus (600 passages) through the driver: Tevatron pickle + Pyserini index directory."""
    from o1e_tevatron.driver.encode import main

    out = tmp_path_factory.mktemp("corpus")
    assert main(["--model_name_or_path", str(llama_checkpoint), "--encode_in_path", str(demo_dir / "corpus.jsonl"),
                 "--encoded_save_path", str(out / "corpus.pkl"), "--faiss_index_dir", str(out / "index"),
                 "--per_device_eval_batch_size", "32", "--output_dir", str(out / "trainer")]) == 0
    return out


@pytest.fixture(scope="session")
def cli():
    return run_cli
