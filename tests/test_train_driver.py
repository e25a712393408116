"""python -m o1e_tevatron.driver.train end to end on a tiny model: flags, losses, resume, NaN stop, merge."""
import errno
import json
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from o1e_tevatron.driver.train import main
from o1e_tevatron.core.checkpoint import BaseModelMismatchError
from o1e_tevatron.families.o1e.model import O1EModel
from o1e_tevatron.tiny import build_tiny_model, demo_texts
from o1e_tevatron.trainer import NonFiniteLossError, O1ETrainer

pytestmark = pytest.mark.filterwarnings("error::FutureWarning")  # deprecations that become errors


def flags(model_dir, demo_dir, out, *extra):
    return ["--model_name_or_path", str(model_dir), "--train_dir", str(demo_dir / "train.jsonl"),
            "--output_dir", str(out), "--per_device_train_batch_size", "4", "--train_n_passages", "2",
            "--q_max_len", "16", "--p_max_len", "32", "--thought_max_len", "16", "--report_to", "none",
            "--use_cpu", "--logging_steps", "1", "--seed", "7", "--disable_tqdm", "true", *extra]


def test_help_lists_tevatron_and_o1e_flags():
    out = subprocess.run([sys.executable, "-m", "o1e_tevatron.driver.train", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for flag in ["--model_name_or_path", "--train_dir", "--dataset_name", "--q_max_len", "--p_max_len",
                 "--train_n_passages", "--negatives_x_device", "--grad_cache", "--gc_q_chunk_size",
                 "--gc_p_chunk_size", "--query_max_len", "--passage_max_len", "--train_group_size",
                 "--thought_max_len", "--gen_loss_weight", "--plain_query_prob", "--temperature", "--normalize",
                 "--pooling", "--lora", "--lora_r", "--lora_alpha", "--lora_dropout", "--lora_target_modules",
                 "--train_special_tokens", "--kd_weight", "--activation_checkpointing", "--bf16", "--deepspeed"]:
        assert flag in out, flag


def test_both_losses_go_down(tiny_llama_dir, demo_dir, tmp_path):
    trainer = main(flags(tiny_llama_dir, demo_dir, tmp_path / "out", "--max_steps", "30", "--learning_rate", "3e-3",
                         "--gen_loss_weight", "0.5", "--temperature", "0.05", "--save_strategy", "no",
                         "--warmup_ratio", "0"))
    model = trainer.accelerator.unwrap_model(trainer.model)
    assert (model.gen_loss_weight, model.contrastive.temperature, model.distillation.temperature) == (0.5, 0.05, 0.05)
    logs = [h for h in trainer.state.log_history if "ctr_loss" in h]
    first, last = logs[:5], logs[-5:]
    for key in ("ctr_loss", "gen_loss"):
        assert sum(h[key] for h in last) < sum(h[key] for h in first), key
    assert (tmp_path / "out" / "adapter_model.safetensors").exists() is False  # full fine-tuning by default
    assert O1EModel.load(tmp_path / "out").template.emb_id is not None


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_resume_from_checkpoint_continues_the_same_run(tiny_llama_dir, demo_dir, tmp_path, tuning):
    """A run restarted from its step-2 checkpoint (as after a crash) ends where the uninterrupted run ends,
    with full fine-tuning (the default) and with LoRA."""
    common = ["--learning_rate", "1e-3", "--save_steps", "2", "--max_steps", "4"]
    if tuning == "lora":
        common += ["--lora", "--lora_r", "4", "--lora_alpha", "8"]
    weights = "adapter_model.safetensors" if tuning == "lora" else "model.safetensors"
    straight = main(flags(tiny_llama_dir, demo_dir, tmp_path / "straight", *common))
    shutil.copytree(tmp_path / "straight" / "checkpoint-2", tmp_path / "crashed" / "checkpoint-2")
    resumed = main(flags(tiny_llama_dir, demo_dir, tmp_path / "crashed", *common,
                         "--resume_from_checkpoint", str(tmp_path / "crashed" / "checkpoint-2")))
    def losses(trainer):  # the resumed run's history starts with the checkpoint's steps 1-2
        return [(h["step"], h["loss"], h["gen_loss"]) for h in trainer.state.log_history if "ctr_loss" in h]

    assert losses(resumed) == losses(straight)
    final = load_file(tmp_path / "straight" / weights)
    again = load_file(tmp_path / "crashed" / weights)
    at_step_2 = load_file(tmp_path / "crashed" / "checkpoint-2" / weights)
    assert final.keys() == again.keys()
    assert any(not torch.equal(at_step_2[k], again[k]) for k in again)
    for key in final:
        torch.testing.assert_close(again[key], final[key], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_resume_over_another_base_is_refused(tiny_llama_dir, demo_dir, tmp_path, tuning):
    other = {"other architecture": build_tiny_model(tmp_path / "qwen2", demo_texts(), arch="qwen2"),
             "other weights": build_tiny_model(tmp_path / "seed-1", demo_texts(), seed=1)}
    common = ["--save_steps", "1", "--max_steps", "1"] + (["--lora", "--lora_r", "4"] if tuning == "lora" else [])
    main(flags(tiny_llama_dir, demo_dir, tmp_path / "run", *common))
    checkpoint = tmp_path / "run" / "checkpoint-1"
    for kind, base in other.items():
        message = (rf"the checkpoint {re.escape(str(checkpoint))} was trained on the base model "
                   rf"{re.escape(str(tiny_llama_dir))}, but the base given is {re.escape(str(base))}")
        with pytest.raises(BaseModelMismatchError, match=message):
            main(flags(base, demo_dir, tmp_path / "resumed", *common, "--max_steps", "2",
                       "--resume_from_checkpoint", str(checkpoint)))


def test_json_config_as_only_argument_and_merged_model(tiny_llama_dir, demo_dir, tmp_path):
    config = {"model_name_or_path": str(tiny_llama_dir), "train_dir": str(demo_dir / "train.jsonl"),
              "output_dir": str(tmp_path / "out"), "per_device_train_batch_size": 4, "train_n_passages": 2,
              "q_max_len": 16, "p_max_len": 32, "thought_max_len": 16, "report_to": "none", "use_cpu": True,
              "max_steps": 1, "lora": True, "lora_r": 4, "merge_lora": True, "save_strategy": "no"}
    (tmp_path / "train.json").write_text(json.dumps(config))
    main([str(tmp_path / "train.json")])
    adapter = O1EModel.load(tmp_path / "out")
    merged = O1EModel.load(tmp_path / "out" / "merged")
    ids = torch.tensor([adapter.template.passage(adapter.template.tokenize("a passage about cells"))])
    torch.testing.assert_close(merged.encode(ids, torch.ones_like(ids)), adapter.encode(ids, torch.ones_like(ids)),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("learning_rate, last_good", [("1e30", "checkpoint-1"), ("1e39", None)])
def test_non_finite_loss_stops_and_names_a_good_checkpoint_of_this_run(tiny_llama_dir, demo_dir, tmp_path,
                                                                       learning_rate, last_good):
    """1e30: step 1's weights are huge but finite, step 2's loss is not; 1e39: step 1 already writes inf
    weights into checkpoint-1, which must not be called good. checkpoint-99 is another run's."""
    (tmp_path / "out" / "checkpoint-99").mkdir(parents=True)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step \d+") as stop:
        main(flags(tiny_llama_dir, demo_dir, tmp_path / "out", "--max_steps", "5", "--learning_rate", learning_rate,
                   "--save_steps", "1", "--max_grad_norm", "0", "--warmup_ratio", "0"))
    named = re.search(r"last good checkpoint: (.*?)\. Try", str(stop.value)).group(1)
    if last_good is None:
        assert named.startswith("none")
        assert (tmp_path / "out" / "checkpoint-1").is_dir()  # saved, but with non-finite weights
    else:
        assert named == str(tmp_path / "out" / last_good)
        assert O1EModel.load(named) is not None


def test_a_full_disk_leaves_no_torn_checkpoint(tiny_llama_dir, demo_dir, tmp_path, monkeypatch):
    """The optimizer state (written after the weights) does not fit: no checkpoint-1 that a resume would
    pick, no partial folder, and the error says so plainly."""
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=r"no space left on device while saving .*checkpoint-1"):
        main(flags(tiny_llama_dir, demo_dir, tmp_path / "out", "--max_steps", "2", "--save_steps", "1"))
    assert not any(p.name.startswith(("checkpoint-", ".checkpoint-")) for p in (tmp_path / "out").iterdir())


def test_activation_checkpointing_and_bf16_pass_through(tiny_llama_dir, demo_dir, tmp_path):
    trainer = main(flags(tiny_llama_dir, demo_dir, tmp_path / "out", "--max_steps", "2", "--lora", "--lora_r", "4",
                         "--activation_checkpointing", "--bf16", "--save_strategy", "no"))
    model = trainer.accelerator.unwrap_model(trainer.model)
    assert model.causal_lm.is_activation_checkpointing
    assert model.causal_lm.dtype == torch.bfloat16
    assert all(h["gen_loss"] == h["gen_loss"] for h in trainer.state.log_history if "gen_loss" in h)  # not NaN


def test_dataset_name_trains_like_train_dir(tiny_llama_dir, demo_dir, tmp_path):
    """--dataset_name goes through `datasets` (here a local folder, since no hub is reachable) and gives
    the same rows, so the same losses, as --train_dir on the same file."""
    folder = tmp_path / "hf" / "demo" / "rows"  # Tevatron reads a 3-part name as name/split: use more parts
    folder.mkdir(parents=True)
    shutil.copy(demo_dir / "train.jsonl", folder / "train.jsonl")
    common = ["--max_steps", "2", "--save_strategy", "no", "--learning_rate", "1e-3"]
    plain = main(flags(tiny_llama_dir, demo_dir, tmp_path / "dir", *common))
    by_name = flags(tiny_llama_dir, demo_dir, tmp_path / "name", *common, "--data_cache_dir", str(tmp_path / "cache"))
    i = by_name.index("--train_dir")
    by_name[i:i + 2] = ["--dataset_name", str(folder)]
    named = main(by_name)

    def losses(trainer):
        return [h[k] for h in trainer.state.log_history if "ctr_loss" in h for k in ("ctr_loss", "gen_loss")]
    assert losses(named) == pytest.approx(losses(plain), rel=1e-5)


def test_the_loss_parts_kept_for_the_next_log_line_hold_no_graph():
    """Between two log lines (--logging_steps) the trainer keeps each step's loss parts; kept with their
    autograd graph, every step's graph would stay alive until the log."""
    weight = torch.ones(2, requires_grad=True)
    outputs = SimpleNamespace(loss=(weight * 2).sum(), loss_parts={"ctr_loss": (weight * 3).sum()})
    trainer = SimpleNamespace(_loss_parts={}, _stop_if_not_finite=lambda _: None)
    O1ETrainer._check_and_record(trainer, outputs)
    (kept,) = trainer._loss_parts["ctr_loss"]
    assert kept.item() == 6.0 and not kept.requires_grad and kept.grad_fn is None


@pytest.mark.parametrize("extra, warmup", [([], 1), (["--warmup_ratio", "0.5"], 4), (["--warmup_ratio", "0"], 0),
                                           (["--warmup_ratio", "0.5", "--warmup_steps", "3"], 3)])
def test_warmup_ratio_reaches_the_scheduler(tiny_llama_dir, demo_dir, tmp_path, extra, warmup):
    """Tevatron's --warmup_ratio (default 0.1) warms the learning rate up over that fraction of the steps;
    transformers 5 has no such field, so the flag once parsed and reached no scheduler. --warmup_steps wins."""
    trainer = main(flags(tiny_llama_dir, demo_dir, tmp_path / "out", "--max_steps", "8", "--learning_rate", "1e-3",
                         "--save_strategy", "no", *extra))
    rates = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    assert rates.index(max(rates)) == warmup and max(rates) == pytest.approx(1e-3), rates
    assert rates[0] == (0 if warmup else pytest.approx(1e-3)), rates  # a warmup starts from 0


def test_warmup_ratio_outside_its_range_is_refused(tiny_llama_dir, demo_dir, tmp_path):
    with pytest.raises(ValueError, match="warmup_ratio"):
        main(flags(tiny_llama_dir, demo_dir, tmp_path / "out", "--max_steps", "2", "--warmup_ratio", "1.5"))


def test_pad_to_multiple_of_trains_like_no_padding(tiny_llama_dir, demo_dir, tmp_path):
    """--pad_to_multiple_of 24 (Tevatron's flag) reaches the collator: every batch is a multiple of 24 tokens
    long, and the masked padding leaves the losses as they were."""
    common = ["--max_steps", "3", "--save_strategy", "no", "--learning_rate", "1e-3", "--gen_loss_weight", "0.5"]
    plain = main(flags(tiny_llama_dir, demo_dir, tmp_path / "plain", *common))
    padded = main(flags(tiny_llama_dir, demo_dir, tmp_path / "padded", *common, "--pad_to_multiple_of", "24"))
    batch = padded.data_collator([padded.train_dataset[i] for i in range(4)])
    assert {k: v.shape[-1] % 24 for k, v in batch.items() if k.endswith("input_ids")} == \
        {"query_input_ids": 0, "passage_input_ids": 0}

    def losses(trainer):
        return [h[k] for h in trainer.state.log_history if "ctr_loss" in h for k in ("ctr_loss", "gen_loss")]
    assert losses(padded) == pytest.approx(losses(plain), rel=1e-4, abs=1e-5)
