#!/usr/bin/env bash
# Table 1: MS MARCO dev (MRR@10, R@1k), TREC DL19 / DL20 (nDCG@10), with and without thoughts, at scale
# on one node of NPROC GPUs (not run here; its CPU simulation is tests/search/test_sharded.py,
# tests/search/test_think_parts.py and the sharded CLI test in tests/search/test_search_cli.py).
#   1. the 8.8M-passage corpus, one shard per GPU (o1e_tevatron.driver.encode --encode_num_shard), stored
#      float16 (VECTOR_DTYPE=float32 to keep float32: 135 GiB for a 4096-d model instead of 67.5);
#   2. thoughts for every query once, one part per GPU (THINK_BACKEND=vllm on a merged checkpoint, or
#      hf), merged into one thoughts.jsonl per dataset that both searches below read;
#   3. the harness searches the shards as they are (never merged into one index; on all GPUs through
#      faiss's sharding when the `gpu` extra, faiss-gpu, is installed); the Pyserini CLI does the same
#      with --index "$SHARDS/index" (see the last line).
# Offline: TOPICS_DIR=<Pyserini topics-and-qrels>; the corpus and topics come from ir_datasets.
source "$(dirname "$0")/../common.sh"
MODEL=${MODEL:-$WORK/models/o1e-llama-2-7b}          # merged (O1EModel.save(merge=True)) for THINK_BACKEND=vllm
RUNS=${RUNS:-$WORK/runs/table1}
SHARDS=$WORK/encodings/$(basename "$MODEL")/msmarco-passage
THOUGHTS=$WORK/thoughts/$(basename "$MODEL")

export_corpus msmarco-passage "$WORK/msmarco-passage.jsonl"
encode_corpus "$MODEL" "$WORK/msmarco-passage.jsonl" "$SHARDS"   # resumable: finished shards are skipped
for dataset in msmarco-passage/dev/small msmarco-passage/trec-dl-2019/judged msmarco-passage/trec-dl-2020/judged; do
  name=${dataset//\//__}
  topics=$WORK/topics/$name.tsv
  mkdir -p "$(dirname "$topics")"
  [[ -s $topics ]] || ir_datasets export "$dataset" queries --format tsv > "$topics"
  think_topics "$MODEL" "$topics" "$THOUGHTS/$name"
  evaluate_o1e "$dataset" "$MODEL" "$RUNS" "$SHARDS" "$THOUGHTS/$name/thoughts.jsonl"
done
python -m o1e_pyserini.eval compare --expected "$RECIPES/table1/expected.yaml" --results "$RUNS"

# The same dev search through Pyserini's own CLI, on the shards, with the merged thoughts:
#   python -m o1e_pyserini.search.faiss --index "$SHARDS/index" --faiss-device cuda:0 \
#     --topics "$WORK/topics/msmarco-passage__dev__small.tsv" --encoder "$MODEL" --device cuda --batch-size 256 \
#     --o1e-thoughts file --o1e-thoughts-file "$THOUGHTS/msmarco-passage__dev__small/thoughts.jsonl" \
#     --hits 1000 --output "$RUNS/dev.pyserini.trec"
