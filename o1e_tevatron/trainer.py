"""transformers.Trainer for every family: its loss, each loss part logged, family checkpoints, a NaN stop."""
from __future__ import annotations

import logging
import os
import shutil
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from .grad_cache import grad_cache_step
from .loss import global_sum, world_size
from .core.checkpoint import staging_folder

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised before the optimizer step that would have applied a NaN/inf loss."""


class SetEpochCallback(TrainerCallback):
    """Tells the dataset the epoch, so plain-query and negative sampling change per epoch."""

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        dataset = getattr(train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(int(state.epoch or 0))


class O1ETrainer(Trainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(SetEpochCallback())
        self._loss_parts: dict[str, list[torch.Tensor]] = {}
        self._good_checkpoints: list[Path] = []  # written by this run, trainable weights finite when saved
        self._staging_run_dir: str | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        self._check_and_record(outputs)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def _check_and_record(self, outputs) -> None:
        """Stop on a non-finite loss; keep the loss parts for the next log line."""
        self._stop_if_not_finite(outputs)
        for key, value in outputs.loss_parts.items():
            self._loss_parts.setdefault(key, []).append(value.detach())  # a log value, not part of the graph

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not self.args.grad_cache:
            return super().training_step(model, inputs, num_items_in_batch)
        return self._grad_cache_training_step(model, inputs)

    def _grad_cache_training_step(self, model, inputs):
        """--grad_cache: the batch in --gc_q_chunk_size / --gc_p_chunk_size chunks (see grad_cache.py).

        The chunks run on the unwrapped model, so DDP does not sync per chunk; gradients are averaged
        over ranks once, at the last micro-batch of a gradient accumulation cycle.
        """
        if self.is_deepspeed_enabled:
            raise NotImplementedError("--grad_cache with DeepSpeed is not supported: use DDP (torchrun)")
        model.train()
        inputs = self._prepare_inputs(inputs)
        family_model = self.accelerator.unwrap_model(model)
        gas = self.current_gradient_accumulation_steps
        with self.compute_loss_context_manager():
            outputs = grad_cache_step(family_model, inputs, self.args.gc_q_chunk_size, self.args.gc_p_chunk_size,
                                      loss_scale=1.0 / gas, backward=self.accelerator.backward)
        self._check_and_record(outputs)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1 \
                and self.accelerator.sync_gradients:
            for param in family_model.parameters():
                if param.requires_grad:
                    if param.grad is None:  # e.g. a rank whose batch had no thought: every rank must reduce
                        param.grad = torch.zeros_like(param)
                    dist.all_reduce(param.grad)
                    param.grad /= dist.get_world_size()
        return outputs.loss.detach() / gas

    def _stop_if_not_finite(self, outputs) -> None:
        finite = torch.isfinite(outputs.loss.detach()).float()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)  # every rank stops together, none hangs
        if finite.item() == 1.0:
            return
        good = [c for c in self._good_checkpoints if c.is_dir()]  # save_total_limit may have removed some
        last = str(good[-1]) if good else "none (this run saved no checkpoint with finite weights)"
        parts = ", ".join(f"{name}={value.item()}" for name, value in outputs.loss_parts.items())
        raise NonFiniteLossError(
            f"non-finite loss at step {self.state.global_step}: loss={outputs.loss.item()}, "
            f"{parts}. Training stopped "
            f"before the optimizer step; last good checkpoint: {last}. Try a lower --learning_rate, "
            f"--bf16 instead of --fp16, a higher --temperature, or --max_grad_norm 1.0."
        )

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:  # a training log: add the mean of each loss part since the last one
            for key, values in self._loss_parts.items():
                if values:
                    mean = torch.stack(values).float().mean()
                    logs[key] = round((global_sum(mean) / world_size()).item(), 4)
                    values.clear()
        super().log(logs, *args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir or self.args.output_dir
        self.accelerator.unwrap_model(self.model).save(output_dir)
        torch.save(self.args, Path(output_dir) / "training_args.bin")

    def _get_output_dir(self, trial) -> str:
        return self._staging_run_dir or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        """Transformers' checkpoint (weights, optimizer, RNG, trainer state) written under a hidden name
        and renamed to ``checkpoint-N`` once complete, so that a full disk or a crash mid-save never
        leaves a torn checkpoint that a resume would pick."""
        run_dir = Path(super()._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        final = run_dir / name
        staging = run_dir / f".{name}.partial"  # one folder for every rank's files
        with staging_folder(final, staging) if self.args.should_save else nullcontext(staging):
            self.accelerator.wait_for_everyone()  # the main process has made the folder
            self._staging_run_dir = str(staging)
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self._staging_run_dir = None
            self.accelerator.wait_for_everyone()  # every rank's files (RNG states) are in before the rename
        if self.args.should_save:
            shutil.rmtree(final, ignore_errors=True)  # a checkpoint-N of an earlier run in this folder
            os.replace(staging / name, final)
            staging.rmdir()
            if self.state.best_model_checkpoint == str(staging / name):
                self.state.best_model_checkpoint = str(final)
            rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
            if self._trainable_weights_finite():
                self._good_checkpoints.append(final)
        self.accelerator.wait_for_everyone()

    def _trainable_weights_finite(self) -> bool:
        model = self.accelerator.unwrap_model(self.model)
        return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        self.accelerator.unwrap_model(model or self.model).load_trainable_state(resume_from_checkpoint)
