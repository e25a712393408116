#!/usr/bin/env bash
# Shared steps of the paper-table recipes (sourced by recipes/table*/{train,eval}.sh).
# Paper B.3: LoRA r32/alpha64, bf16, lr 1e-4, 8 GPUs x 8 queries, 15 hard negatives,
# query 32 / passage 192 / thought 256 tokens. Override with environment variables.
set -euo pipefail

RECIPES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NPROC=${NPROC:-8}
WORK=${WORK:-$PWD/o1e-work}            # models, encodings and runs go here
DATA_DIR=${DATA_DIR:-${O1E_DATA_DIR:-}} # local BEIR folders (offline); empty: ir_datasets downloads
TOPICS_DIR=${TOPICS_DIR:-}              # Pyserini topics-and-qrels folder, if local
TRAIN_DIR=${TRAIN_DIR:-$WORK/train}     # training rows with thoughts (see recipes/synthesis)
DEEPSPEED=${DEEPSPEED:-}                # set to $RECIPES/ds_zero1.json to train with DeepSpeed stage 1

# train_o1e BACKBONE OUTPUT_DIR [extra Tevatron flags...]
train_o1e() {
  local backbone=$1 output_dir=$2; shift 2
  torchrun --nproc_per_node "$NPROC" -m o1e_tevatron.driver.train \
    --model_name_or_path "$backbone" \
    --train_dir "$TRAIN_DIR" \
    --output_dir "$output_dir" \
    --q_max_len 32 --p_max_len 192 --thought_max_len 256 \
    --train_n_passages 16 \
    --per_device_train_batch_size 8 \
    --learning_rate 1e-4 \
    --bf16 \
    --lora --lora_r 32 --lora_alpha 64 \
    --negatives_x_device \
    --gen_loss_weight 0.2 --plain_query_prob 0.1 --temperature 0.02 \
    --activation_checkpointing \
    --num_train_epochs 1 --warmup_ratio 0.1 \
    ${DEEPSPEED:+--deepspeed "$DEEPSPEED"} \
    "$@"
}

# encode_corpus MODEL_DIR CORPUS_JSONL OUT_DIR: one shard per GPU (Tevatron --encode_num_shard), each
# written as o1e's safe .npz (OUT_DIR/corpus.i.npz) and as a faiss index directory (OUT_DIR/index/i),
# float16 from 1M passages on (--vector_dtype auto). OUT_DIR/index is then searchable as one sharded
# index (o1e_pyserini.search.faiss --index OUT_DIR/index), never merged; finished shards are skipped.
encode_corpus() {
  local model=$1 corpus=$2 out=$3
  mkdir -p "$out"
  for shard in $(seq 0 $((NPROC - 1))); do
    CUDA_VISIBLE_DEVICES=$shard python -m o1e_tevatron.driver.encode \
      --output_dir "$out" \
      --model_name_or_path "$model" \
      --bf16 --per_device_eval_batch_size 256 --p_max_len 192 \
      --encode_in_path "$corpus" \
      --encode_num_shard "$NPROC" --encode_shard_index "$shard" \
      --vector_dtype "${VECTOR_DTYPE:-auto}" \
      --encoded_save_path "$out/corpus.$shard.npz" --faiss_index_dir "$out/index/$shard" &
  done
  wait
}

# think_topics MODEL_DIR TOPICS_TSV OUT_DIR: thoughts for every query, one part per GPU (vLLM on a merged
# checkpoint with THINK_BACKEND=vllm; hf is the reference), resumable, merged into OUT_DIR/thoughts.jsonl.
think_topics() {
  local model=$1 topics=$2 out=$3
  for part in $(seq 0 $((NPROC - 1))); do
    CUDA_VISIBLE_DEVICES=$part python -m o1e_pyserini.think run --model "$model" --topics "$topics" \
      --output-dir "$out" --num-shards "$NPROC" --shard-index "$part" --backend "${THINK_BACKEND:-vllm}" \
      --device cuda --dtype bfloat16 --num-thoughts 3 --temperature 0.1 --top-p 0.9 --max-thought-tokens 128 &
  done
  wait
  python -m o1e_pyserini.think merge --topics "$topics" --output-dir "$out" --num-shards "$NPROC"
}

# evaluate DATASET RETRIEVER RUNS_DIR [extra eval flags...]
evaluate() {
  local dataset=$1 retriever=$2 runs=$3; shift 3
  python -m o1e_pyserini.eval --dataset "$dataset" --retriever "$retriever" --output-dir "$runs" \
    ${DATA_DIR:+--data-dir "$DATA_DIR"} ${TOPICS_DIR:+--topics-dir "$TOPICS_DIR"} \
    --device cuda --batch-size 256 --max-passage-length 192 "$@"
}

# export_corpus IR_DATASETS_ID OUT_JSONL: data prep for encode_corpus (doc_id/text/title lines).
export_corpus() {
  [[ -s $2 ]] || ir_datasets export "$1" docs --format jsonl > "$2"
}

# evaluate_o1e DATASET MODEL_DIR RUNS_DIR [SHARDS_DIR] [THOUGHTS_JSONL]: encoded shards (if given) become
# the cached index (one shard directory each, searched shard-wise: on all GPUs when faiss-gpu is
# installed), then the dataset is searched with thoughts (think; read from THOUGHTS_JSONL if given)
# and without (fast).
evaluate_o1e() {
  local dataset=$1 model=$2 runs=$3 shards=${4:-} thoughts=${5:-}
  if [[ -n $shards ]] && compgen -G "$shards/corpus.*.npz" > /dev/null; then
    python -m o1e_pyserini.eval import-shards --dataset "$dataset" --retriever "o1e:$model" \
      --max-passage-length 192 --vector-dtype "${VECTOR_DTYPE:-auto}" --shards "$shards"/corpus.*.npz
  fi
  evaluate "$dataset" "o1e:$model" "$runs/think" --mode think --num-thoughts 3 \
    --vector-dtype "${VECTOR_DTYPE:-auto}" ${thoughts:+--thoughts-file "$thoughts"}
  evaluate "$dataset" "o1e:$model" "$runs/fast" --mode fast --vector-dtype "${VECTOR_DTYPE:-auto}"
}
