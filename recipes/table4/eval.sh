#!/usr/bin/env bash
# Table 4: BEIR + CosQA average nDCG@10. The jointly trained model with and without thoughts (the
# Table 2 runs) against the separate-generator arm: RepLLaMA alone, and RepLLaMA reading 3 thoughts per
# query written by another LLM (GPT-4o-mini in the paper) behind an OpenAI-compatible endpoint, each
# (q, t_i) embedded and the normalised vectors averaged as O1E does. The thoughts are saved beside the
# runs (<run>.queries/thoughts.jsonl); rerun a dataset with --thoughts-file to re-score without the API.
source "$(dirname "$0")/../common.sh"
RUNS=${RUNS:-$WORK/runs/table2}
REPLLAMA=${REPLLAMA:-castorini/repllama-v1-7b-lora-passage}   # adapter on meta-llama/Llama-2-7b-hf
THOUGHT_SERVER=${THOUGHT_SERVER:-https://api.openai.com/v1}   # key from $OPENAI_API_KEY
THOUGHT_MODEL=${THOUGHT_MODEL:-gpt-4o-mini}
test -d "$RUNS/think" || bash "$RECIPES/table2/eval.sh"
for dataset in beir/trec-covid beir/nq beir/hotpotqa beir/fiqa/test beir/webis-touche2020/v2 \
               beir/dbpedia-entity/test beir/fever/test beir/scifact/test beir/nfcorpus/test o1e/cosqa/dev; do
  evaluate "$dataset" "repllama:$REPLLAMA" "$RUNS/repllama"
  evaluate "$dataset" "repllama:$REPLLAMA" "$RUNS/repllama-gpt-4o-mini-thoughts" \
    --thought-server "$THOUGHT_SERVER" --thought-model "$THOUGHT_MODEL" --num-thoughts 3 --temperature 0.7 \
    --max-thought-tokens 256
done
python -m o1e_pyserini.eval compare --expected "$RECIPES/table4/expected.yaml" --results "$RUNS"
