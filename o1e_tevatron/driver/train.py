"""python -m o1e_tevatron.driver.train: Tevatron's training flags plus the families' (``--help`` lists all).

``--family o1e`` (default) trains the joint loss of eq. 10 (thought generation + contrastive at
``<emb>``) from one query forward per step; ``--family debater`` trains DEBATER's max-step InfoNCE and
self-distillation. Either in chunks with --grad_cache; works with torchrun (nccl or gloo), DeepSpeed
ZeRO-1/2, bf16, gradient checkpointing.
"""
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import torch.distributed as dist
from transformers import set_seed
from transformers.trainer_utils import get_last_checkpoint

from ..arguments import parse_args
from ..collator import O1ECollator
from ..data import TrainDataset, load_train_rows
from ..families.registry import family_class
from ..core.errors import CheckpointError, run_command
from ..trainer import O1ETrainer

logger = logging.getLogger(__name__)


def family_training_kwargs(family: str, training_args) -> dict:
    """The training flags each family's model takes."""
    if family == "debater":
        if training_args.kd_weight:
            raise ValueError("--kd_weight (distillation from pos_scores/neg_scores) is O1E's; DEBATER distils "
                             "its own best step")
        return {"negatives_x_device": training_args.negatives_x_device}
    return dict(gen_loss_weight=training_args.gen_loss_weight, negatives_x_device=training_args.negatives_x_device,
                gen_loss_chunk_size=training_args.gen_loss_chunk_size, kd_weight=training_args.kd_weight,
                kd_teacher_temperature=training_args.kd_teacher_temperature)


def resume_point(value: Optional[str], output_dir: str) -> Optional[str]:
    """``--resume_from_checkpoint``: a checkpoint folder; ``true`` / ``last`` = the last ``checkpoint-N`` of
    ``--output_dir`` (the Trainer's meaning of True, which a flag string never reaches); ``false`` = none."""
    if value is None or value.lower() in ("false", ""):
        return None
    if value.lower() in ("true", "last"):
        last = get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if last is None:
            raise CheckpointError(f"--resume_from_checkpoint {value}: no checkpoint-N folder to resume from",
                                  output_dir)
        return last
    if not Path(value).is_dir():
        raise CheckpointError("--resume_from_checkpoint: no such checkpoint folder (give one, or 'true' for the "
                              "last one in --output_dir)", value)
    return value


def main(argv=None):
    model_args, data_args, training_args = parse_args(argv=argv)
    resume = resume_point(training_args.resume_from_checkpoint, training_args.output_dir)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if training_args.local_rank in (-1, 0) else logging.WARNING,
    )
    set_seed(training_args.seed)
    dtype = "bfloat16" if training_args.bf16 else "float16" if training_args.fp16 else model_args.dtype
    model = family_class(model_args.family).build(
        model_args.model_name_or_path, model_args.family_config(data_args),
        tokenizer_name=model_args.tokenizer_name, cache_dir=model_args.cache_dir,
        lora=model_args.lora, **model_args.lora_settings(),
        lora_target_modules=model_args.lora_target_modules.split(","),
        train_special_tokens=model_args.train_special_tokens, dtype=dtype,
        attn_implementation=model_args.attn_implementation, trust_remote_code=model_args.trust_remote_code,
        **family_training_kwargs(model_args.family, training_args),
    )
    thinks = model_args.family == "o1e"  # DEBATER's queries never carry a thought
    if not thinks:
        from ..families.debater.model import warn_on_turn_closing_eos
        warn_on_turn_closing_eos(model.template)
    dataset = TrainDataset(
        load_train_rows(data_args), train_n_passages=data_args.train_n_passages,
        plain_query_prob=data_args.plain_query_prob if thinks else 1.0,
        require_thought=data_args.require_thought and thinks,
        positive_passage_no_shuffle=data_args.positive_passage_no_shuffle,
        negative_passage_no_shuffle=data_args.negative_passage_no_shuffle, seed=training_args.seed,
        require_grounding=thinks and model.template.config.grounding_passages > 0,
    )
    trainer = O1ETrainer(
        model=model, args=training_args, train_dataset=dataset,
        data_collator=O1ECollator(model.template, data_args.padding_side, data_args.pad_to_multiple_of),
    )
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    if training_args.merge_lora and trainer.is_world_process_zero():
        model.save(os.path.join(training_args.output_dir, "merged"), merge=True)
    if dist.is_initialized():  # PyTorch's clean exit; together, since a rank that leaves early can abort gloo peers
        trainer.accelerator.wait_for_everyone()
        dist.destroy_process_group()
    return trainer


if __name__ == "__main__":
    run_command(main, sys.argv[1:])
