"""Two processes (torchrun, gloo, CPU): cross-device negatives give the single-process global-batch loss,
distillation included (only InfoNCE is scaled by the world size)."""
from pathlib import Path

import pytest

from distributed_worker import torchrun, two_ranks_against_one_process  # tests/ is on sys.path

WORKER = Path(__file__).with_name("distributed_worker.py")


def test_gathered_loss_and_gradients_equal_single_process(tiny_model_dir, tmp_path):
    r = two_ranks_against_one_process(str(WORKER), str(tiny_model_dir), str(tmp_path / "result.json"))
    assert r["ctr"] == pytest.approx(r["ref_ctr"], rel=1e-5)
    assert r["gen"] == pytest.approx(r["ref_gen"], rel=1e-5)
    assert r["kd"] == pytest.approx(r["ref_kd"], rel=1e-5) and r["kd"] > 0


def test_train_driver_under_torchrun_with_gloo(tiny_llama_dir, demo_dir, tmp_path):
    torchrun("-m", "o1e_tevatron.driver.train", "--model_name_or_path", str(tiny_llama_dir),
             "--train_dir", str(demo_dir / "train.jsonl"), "--output_dir", str(tmp_path / "out"),
             "--per_device_train_batch_size", "2", "--train_n_passages", "2", "--q_max_len", "16",
             "--p_max_len", "32", "--thought_max_len", "16", "--max_steps", "3", "--negatives_x_device",
             "--lora", "--lora_r", "4", "--ddp_backend", "gloo", "--use_cpu", "--report_to", "none",
             "--save_strategy", "no", "--logging_steps", "1")
    assert (tmp_path / "out" / "adapter_model.safetensors").exists()
