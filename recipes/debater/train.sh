#!/usr/bin/env bash
# DEBATER in the release's setting: MiniCPM backbone, E5 mix (query, positive, one hard negative),
# 4 GPUs x 64 queries, lr 2e-4, 300 warmup steps, 1000 steps, LoRA r16/alpha32 (the --family debater
# defaults), M=8 step tokens, scale 30, max length 512, cross-device negatives.
# Data prep: $TRAIN_DIR holds Tevatron rows {query_id, query, positive_passages, negative_passages}.
# The release draws each global batch from one source dataset and gives each source its instruction;
# o1e takes one --debater_query_instruction per run (train one source per run, or leave it empty).
# Not run here: a documented script, without measured numbers.
source "$(dirname "$0")/../common.sh"
NPROC=${NPROC:-4}
BACKBONE=${BACKBONE:-openbmb/MiniCPM-2B-dpo-bf16}
MODEL=${MODEL:-$WORK/models/debater-minicpm-2b}
test -d "$TRAIN_DIR" || { echo "no training data at TRAIN_DIR=$TRAIN_DIR" >&2; exit 1; }
torchrun --nproc_per_node "$NPROC" -m o1e_tevatron.driver.train --family debater \
  --model_name_or_path "$BACKBONE" --train_dir "$TRAIN_DIR" --output_dir "$MODEL" \
  --q_max_len 512 --p_max_len 448 --train_n_passages 2 --per_device_train_batch_size 64 \
  --learning_rate 2e-4 --warmup_steps 300 --max_steps 1000 --bf16 --lora --negatives_x_device \
  --activation_checkpointing --trust_remote_code \
  ${DEEPSPEED:+--deepspeed "$DEEPSPEED"} "$@"
