#!/usr/bin/env bash
# Table 4: BEIR + CosQA average nDCG@10 of the jointly trained model, with and without thoughts
# (same runs as Table 2). The separate-generator arm (RepLLaMA fed GPT-4o-mini thoughts) needs a
# RepLLaMA encoder and a thought source outside o1e; its paper numbers sit in expected.yaml and
# show as "missing" unless runs are placed under $RUNS/repllama*/.
source "$(dirname "$0")/../common.sh"
RUNS=${RUNS:-$WORK/runs/table2}
test -d "$RUNS" || bash "$RECIPES/table2/eval.sh"
python -m o1e_pyserini.eval compare --expected "$RECIPES/table4/expected.yaml" --results "$RUNS"
