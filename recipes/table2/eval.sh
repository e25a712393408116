#!/usr/bin/env bash
# Table 2: zero-shot BEIR (9 sets) + CosQA, nDCG@10, with and without thoughts; model of table1/train.sh.
# Offline: DATA_DIR=<folder of BEIR copies: scifact/, nfcorpus/, ..., cosqa/ (BEIR or CoCLR release)>.
source "$(dirname "$0")/../common.sh"
MODEL=${MODEL:-$WORK/models/o1e-llama-2-7b}
RUNS=${RUNS:-$WORK/runs/table2}
for dataset in beir/trec-covid beir/nq beir/hotpotqa beir/fiqa/test beir/webis-touche2020/v2 \
               beir/dbpedia-entity/test beir/fever/test beir/scifact/test beir/nfcorpus/test o1e/cosqa/dev; do
  evaluate_o1e "$dataset" "$MODEL" "$RUNS"
done
python -m o1e_pyserini.eval compare --expected "$RECIPES/table2/expected.yaml" --results "$RUNS"
