#!/usr/bin/env bash
# Thought synthesis end to end: k=3 teacher candidates per training query, then the retrieval committee.
#   INPUT   training rows (Tevatron or authors' JSONL, or a BEIR folder with qrels/train.tsv)
#   WORK    where candidates.jsonl (+ .failures.jsonl) and vote_report.json go
#   TRAIN   the folder to pass as --train_dir to python -m o1e_tevatron.driver.train
# Rerun the same command after an interruption or with failures: finished rows are skipped.
set -euo pipefail
INPUT=${INPUT:?set INPUT to the training rows}
WORK=${WORK:-work/synthesis}
TRAIN=${TRAIN:-data/train_with_thoughts}
MODEL=${MODEL:-meta-llama/Llama-3.1-70B-Instruct}
mkdir -p "$WORK" "$TRAIN"

# 3 candidates per query in one request (n=3), max_tokens 512 as the authors; 3 in-context examples.
python -m o1e_tevatron.synthesis.generate \
  --input_path "$INPUT" \
  --output_path "$WORK/candidates.jsonl" \
  --base_url "${BASE_URL:-http://localhost:8000/v1}" \
  --model "$MODEL" \
  --api_key_env TEACHER_API_KEY \
  --num_candidates 3 --num_examples 3 \
  --temperature 1.0 --top_p 1.0 --max_tokens 512 \
  --concurrency "${CONCURRENCY:-256}" \
  --max_retries 5

# The paper's committee: BM25 + bge-large-en-v1.5 + gte-large-en-v1.5 + stella_en_1.5B_v5 (local paths or
# hub ids where the hub is reachable). Soft voting is the authors' default; --voting hard is the paper's.
# gte and stella ship their own model code: --trust_remote_code runs it (off by default; only for folders you trust).
python -m o1e_tevatron.synthesis.vote \
  --input_path "$WORK/candidates.jsonl" \
  --output_path "$TRAIN/train.jsonl" \
  --report_path "$WORK/vote_report.json" \
  --dense_models ${DENSE_MODELS:-BAAI/bge-large-en-v1.5 Alibaba-NLP/gte-large-en-v1.5 dunzhang/stella_en_1.5B_v5} \
  --voting "${VOTING:-soft}" --trust_remote_code \
  --batch_size 128
