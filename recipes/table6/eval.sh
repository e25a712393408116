#!/usr/bin/env bash
# Table 6: each backbone on MS MARCO dev (MRR@10), DL19, DL20 and the BEIR + CosQA average (thinking).
# Runs go to $RUNS/<backbone>/think/...; compare reads condition names as <backbone>/think.
source "$(dirname "$0")/../common.sh"
BACKBONES=${BACKBONES:-"Mistral-7B-v0.3 Llama-3.1-8B Qwen2.5-7B Qwen2.5-3B Qwen2.5-1.5B Qwen2.5-0.5B"}
RUNS=${RUNS:-$WORK/runs/table6}
for backbone in $BACKBONES; do
  model=$WORK/models/o1e-$backbone
  for dataset in msmarco-passage/dev/small msmarco-passage/trec-dl-2019/judged msmarco-passage/trec-dl-2020/judged \
                 beir/trec-covid beir/nq beir/hotpotqa beir/fiqa/test beir/webis-touche2020/v2 \
                 beir/dbpedia-entity/test beir/fever/test beir/scifact/test beir/nfcorpus/test o1e/cosqa/dev; do
    evaluate "$dataset" "o1e:$model" "$RUNS/$backbone/think" --mode think --num-thoughts 3
  done
done
python -m o1e_pyserini.eval compare --expected "$RECIPES/table6/expected.yaml" --results "$RUNS"
