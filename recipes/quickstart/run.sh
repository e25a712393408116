#!/usr/bin/env bash
# The whole O1 Embedder chain on CPU, no network: install -> tiny model -> joint training on built-in
# data -> corpus encoding -> think-mode and fast-mode search through Pyserini's CLI -> nDCG@10 + t-test.
# Outputs go to $OUT (default runs/quickstart). A tiny random model has nothing to think with: the
# scores show that the chain works, not what O1E reaches (see recipes/table*/ for that).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash recipes/quickstart/install.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=.venv/bin/python
DEMO=o1e_tevatron/resources/demo
OUT=${OUT:-runs/quickstart}
mkdir -p "$OUT"

echo "== 1/5 a tiny random Llama-style model with a BPE tokenizer trained on the demo corpus"
$PY -m o1e_tevatron.tiny "$OUT/base"

echo "== 2/5 joint training (thought generation + contrastive at <emb>) on $DEMO/train.jsonl"
$PY -m o1e_tevatron.driver.train --model_name_or_path "$OUT/base" --train_dir "$DEMO/train.jsonl" \
  --output_dir "$OUT/model" --use_cpu --report_to none --save_strategy no \
  --num_train_epochs 4 --per_device_train_batch_size 8 --train_n_passages 4 \
  --q_max_len 32 --p_max_len 64 --thought_max_len 32 --learning_rate 2e-3 --warmup_ratio 0.1 \
  --gen_loss_weight 0.5 --temperature 0.05 --logging_steps 8 --disable_tqdm true

echo "== 3/5 corpus encoding into a Pyserini faiss index"
$PY -m o1e_tevatron.driver.encode --model_name_or_path "$OUT/model" --output_dir "$OUT/encode" --use_cpu \
  --encode_in_path "$DEMO/corpus.jsonl" --faiss_index_dir "$OUT/index" --p_max_len 64 \
  --per_device_eval_batch_size 64

echo "== 4/5 search through Pyserini's CLI: think mode (k=3 thoughts per query) and fast mode"
# Thoughts are sampled at temperature 1.0 here (the authors use 0.1): a minute-old tiny model's most
# likely next token is </s>, so at 0.1 its thoughts would all be empty.
for mode in think fast; do
  $PY -m o1e_pyserini.search.faiss --index "$OUT/index" --topics "$DEMO/topics.tsv" --encoder "$OUT/model" \
    --device cpu --batch-size 16 --hits 100 --output "$OUT/run.$mode.trec" \
    --o1e-mode "$mode" --o1e-num-thoughts 3 --o1e-max-thought-tokens 32 --o1e-temperature 1.0 --o1e-seed 0 --o1e-save-queries "$OUT/queries.$mode"
done

echo "== 5/5 scores (a = fast, b = think)"
$PY -m o1e_pyserini.eval ttest --qrels "$DEMO/qrels.txt" --run-a "$OUT/run.fast.trec" --run-b "$OUT/run.think.trec" \
  --metric nDCG@10 --output "$OUT/ttest.json"
echo "done: runs, index, model and encoded queries (with their thoughts) are in $OUT"
