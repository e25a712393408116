#!/usr/bin/env bash
# Table 4: joint training (the Table 1 model) against a separate thought generator.
# The separate-model arm needs no training: an off-the-shelf retriever (RepLLaMA) reads thoughts
# from GPT-4o-mini. Only the jointly trained O1 Embedder is trained here.
exec "$(dirname "$0")/../table1/train.sh" "$@"
