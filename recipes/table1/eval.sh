#!/usr/bin/env bash
# Table 1: MS MARCO dev (MRR@10, R@1k), TREC DL19 / DL20 (nDCG@10), with and without thoughts.
# Offline: TOPICS_DIR=<Pyserini topics-and-qrels>; the 8.8M-passage corpus comes from ir_datasets
# (msmarco-passage). The corpus is encoded in shards (one per GPU) by o1e_tevatron.driver.encode and
# imported as the harness's cached index; SHARDED_ENCODING=0 lets the harness encode it in one process.
source "$(dirname "$0")/../common.sh"
MODEL=${MODEL:-$WORK/models/o1e-llama-2-7b}
RUNS=${RUNS:-$WORK/runs/table1}
SHARDS=$WORK/encodings/$(basename "$MODEL")/msmarco-passage
if [[ ${SHARDED_ENCODING:-1} == 1 && ! -e $SHARDS/corpus.0.pkl ]]; then  # 8.8M passages: one shard per GPU
  export_corpus msmarco-passage "$WORK/msmarco-passage.jsonl"
  encode_corpus "$MODEL" "$WORK/msmarco-passage.jsonl" "$SHARDS"
fi
for dataset in msmarco-passage/dev/small msmarco-passage/trec-dl-2019/judged msmarco-passage/trec-dl-2020/judged; do
  evaluate_o1e "$dataset" "$MODEL" "$RUNS" "$SHARDS"
done
python -m o1e_pyserini.eval compare --expected "$RECIPES/table1/expected.yaml" --results "$RUNS"
