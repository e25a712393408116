#!/usr/bin/env bash
# Table 6: the backbone sweep. One model per backbone, same recipe as Table 1.
source "$(dirname "$0")/../common.sh"
BACKBONES=${BACKBONES:-"mistralai/Mistral-7B-v0.3 meta-llama/Llama-3.1-8B Qwen/Qwen2.5-7B Qwen/Qwen2.5-3B Qwen/Qwen2.5-1.5B Qwen/Qwen2.5-0.5B"}
for backbone in $BACKBONES; do
  train_o1e "$backbone" "$WORK/models/o1e-$(basename "$backbone")" "$@"
done
