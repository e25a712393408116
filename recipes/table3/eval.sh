#!/usr/bin/env bash
# Table 3: BRIGHT StackExchange (7 domains), nDCG@10, with and without thoughts.
# BRIGHT corpora are local: BRIGHT_CORPUS_DIR/<domain>.jsonl (id/content or _id/text lines, e.g.
# exported from the xlangai/BRIGHT "documents" config); topics/qrels from TOPICS_DIR or ir_datasets.
# BRIGHT_EXAMPLES_DIR/<domain>.jsonl (optional: the "examples" config's rows, with id and excluded_ids)
# applies BRIGHT's per-query excluded_ids, as BRIGHT's own evaluation does.
source "$(dirname "$0")/../common.sh"
MODEL=${MODEL:-$WORK/models/o1e-llama-2-7b}
RUNS=${RUNS:-$WORK/runs/table3}
BRIGHT_CORPUS_DIR=${BRIGHT_CORPUS_DIR:?set BRIGHT_CORPUS_DIR to the folder of <domain>.jsonl corpora}
for domain in biology earth-science economics psychology robotics stackoverflow sustainable-living; do
  examples=${BRIGHT_EXAMPLES_DIR:+$BRIGHT_EXAMPLES_DIR/$domain.jsonl}
  for mode in think fast; do
    evaluate "bright/$domain" "o1e:$MODEL" "$RUNS/$mode" --mode "$mode" --corpus "$BRIGHT_CORPUS_DIR/$domain.jsonl" \
      ${examples:+--excluded-ids "$examples"}
  done
done
python -m o1e_pyserini.eval compare --expected "$RECIPES/table3/expected.yaml" --results "$RUNS"
