#!/usr/bin/env bash
# DEBATER on BEIR through the harness: the last step's vector (the default index) and the best of
# the M steps (max-steps), each dataset with DEBATER's per-task query instruction.
source "$(dirname "$0")/../common.sh"
MODEL=${MODEL:-$WORK/models/debater-minicpm-2b}
RUNS=${RUNS:-$WORK/runs/debater}
for dataset in beir/scifact/test beir/nfcorpus/test beir/fiqa/test beir/arguana beir/trec-covid; do
  evaluate "$dataset" "debater:$MODEL" "$RUNS/last"
  evaluate "$dataset" "debater:$MODEL" "$RUNS/max-steps" --debater-scoring max-steps
done
