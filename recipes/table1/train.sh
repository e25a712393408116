#!/usr/bin/env bash
# Table 1 (and 2, 3, 4): O1 Embedder on Llama-2-7B, trained on MS MARCO passage with teacher thoughts.
# Data prep: $TRAIN_DIR holds Tevatron rows {query_id, query, thought, positive_passages,
# negative_passages (15 hard negatives)} made with o1e_tevatron.synthesis (see recipes/synthesis).
source "$(dirname "$0")/../common.sh"
BACKBONE=${BACKBONE:-meta-llama/Llama-2-7b-hf}
MODEL=${MODEL:-$WORK/models/o1e-llama-2-7b}
test -d "$TRAIN_DIR" || { echo "no training data at TRAIN_DIR=$TRAIN_DIR (see recipes/synthesis)" >&2; exit 1; }
train_o1e "$BACKBONE" "$MODEL" "$@"
