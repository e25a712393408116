#!/usr/bin/env bash
# The paper in miniature on a real pretrained LLM (SmolLM2-135M-Instruct as teacher and backbone), on
# real data: SciFact train for training, SciFact test (in-domain) and CoSQA dev (zero-shot) for scores.
#
#   bash recipes/mini/run.sh                  # CPU: the settings below
#   DEVICE=cuda bash recipes/mini/run.sh      # one GPU: same pipeline, same settings
#
# Stages (each skipped when its output is there, so a rerun resumes; synthesis resumes row by row):
#   1 mine     BM25 hard negatives for SciFact train (python -m o1e_pyserini.mine)
#   2 teacher  `transformers serve` SmolLM2 on loopback -> synthesis.generate (paper prompt, k=3) -> vote
#   3 train    (a) contrastive only, plain queries; (b) O1E joint (generation + contrastive); (c) DEBATER
#              (passage-side steps, max-step InfoNCE + self-distillation); same data, steps and seed
#   4 eval     (a); (b) fast; (b) think; (a) + the teacher's thoughts (Table 4's separate generator); (c)
#   5 compare  paired t-tests against (a) and between (b) think and fast
# Small artifacts (mined rows, candidates, voted thoughts, logs, metrics, runs) stay in recipes/mini/;
# models and indexes go to $WORK (not committed).
set -euo pipefail
cd "$(dirname "$0")/../.."
MINI=recipes/mini
PY=${PY:-.venv/bin/python}
DATA_DIR=${DATA_DIR:-../shared/data}
WORK=${WORK:-runs/mini}
DEVICE=${DEVICE:-cpu}
# inference (teacher, encoding, thoughts): bfloat16 ran SmolLM2 3.4x faster than float32 on an AMX CPU;
# CPUs without bfloat16 units (and most AMD EPYCs before Zen 4) stay in float32
DTYPE=${DTYPE:-$( [[ $DEVICE != cpu ]] || grep -qwE "amx_bf16|avx512_bf16" /proc/cpuinfo && echo bfloat16 || echo float32)}
MODEL=${MODEL:-HuggingFaceTB/SmolLM2-135M-Instruct}
TRAIN_QUERIES=${TRAIN_QUERIES:-809}        # SciFact train has 809 queries
STEPS=${STEPS:-50}
BATCH=${BATCH:-8}
GROUP=${GROUP:-2}                          # passages per query: 1 positive + 1 BM25 negative (+ in-batch)
LR=${LR:-2e-4}
ARMS=${ARMS:-a b}                          # add c for DEBATER (not in the 2-hour CPU budget)
P_LEN=${P_LEN:-128}
Q_LEN=${Q_LEN:-32}
T_LEN=${T_LEN:-64}                         # thought tokens (the teacher's max_tokens too)
THINK_T=${THINK_T:-0.7}                    # test-time thought temperature (the authors: 0.1 on a 7B)
PORT=${PORT:-8765}
# The teacher server: `serve` = Hugging Face's `transformers serve` (continuous batching; answers one choice
# per request, so generate asks k times), `loopback` = o1e's loopback server (n per request, concurrent
# requests batched, sampling checked by its tests). On this 2-core CPU both gave ~12 generated tokens/s
# under a load of 4-5 (2026-12-01); `serve` is the choice on a GPU.
TEACHER=${TEACHER:-loopback}
STOP_AFTER=${STOP_AFTER:-}                  # mine|vote|train|eval: stop after that stage
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$WORK" "$MINI/data" "$MINI/logs" "$MINI/results"
stamp() { [[ -e $WORK/.done.$1 ]]; }
done_() { date -u +%FT%TZ > "$WORK/.done.$1"; }
timed() { local name=$1; shift; local t0=$SECONDS; "$@"; echo "{\"stage\": \"$name\", \"seconds\": $((SECONDS - t0)), \"device\": \"$DEVICE\"}" >> "$MINI/logs/stage-times.jsonl"; }

echo "== 1/5 BM25 hard negatives for SciFact train"
if ! stamp mine; then
  timed mine $PY -m o1e_pyserini.mine --input "$DATA_DIR/scifact" --split train --output "$WORK/train.jsonl" \
    --depth 30 --negatives 7 | tee "$MINI/logs/mine.json"
  done_ mine
fi
[[ $STOP_AFTER != mine ]] || exit 0

echo "== 2/5 teacher thoughts: SmolLM2 behind transformers serve, the paper's prompt, k=3; committee vote"
teacher_up() {
  local path; path=$($PY -c "from o1e_tevatron.models import resolve_model_path as r; print(r('$MODEL'))")
  if [[ $TEACHER == serve ]]; then
    .venv/bin/transformers serve "$path" --host 127.0.0.1 --port "$PORT" --device "$DEVICE" --dtype "$DTYPE" \
      --continuous-batching > "$WORK/teacher.log" 2>&1 &
  else
    $PY -m o1e_tevatron.synthesis.loopback_server --model_name_or_path "$path" --port "$PORT" --eos_bias 0 \
      --max_prompt_tokens 4096 --served_model_name "$path" --dtype "$DTYPE" > "$WORK/teacher.log" 2>&1 &
  fi
  TEACHER_PID=$!
  trap 'kill $TEACHER_PID 2>/dev/null || true' EXIT
  for _ in $(seq 120); do curl -sf "127.0.0.1:$PORT/v1/models" > /dev/null && break; sleep 2; done
  TEACHER_MODEL=$path
}
# committed candidates (a run elsewhere) are where generate resumes from
[[ -e $WORK/candidates.jsonl || ! -e $MINI/data/candidates.jsonl.gz ]] || gunzip -c "$MINI/data/candidates.jsonl.gz" > "$WORK/candidates.jsonl"
if ! stamp vote; then
  teacher_up
  head -n "$TRAIN_QUERIES" "$WORK/train.jsonl" > "$WORK/train.subset.jsonl"
  timed generate $PY -m o1e_tevatron.synthesis.generate --input_path "$WORK/train.subset.jsonl" \
    --output_path "$WORK/candidates.jsonl" --base_url "http://127.0.0.1:$PORT/v1" --model "$TEACHER_MODEL" \
    --num_candidates 3 --num_examples 3 --example_max_chars 300 --max_tokens "$T_LEN" --temperature 0.7 --top_p 0.9 \
    --concurrency 16 --request_timeout 600
  gzip -c "$WORK/candidates.jsonl" > "$MINI/data/candidates.jsonl.gz"
  timed vote $PY -m o1e_tevatron.synthesis.vote --input_path "$WORK/candidates.jsonl" \
    --output_path "$WORK/thoughts.jsonl" --dense_models sentence-transformers/all-MiniLM-L6-v2 --voting soft \
    | tee "$MINI/logs/vote.json"
  gzip -c "$WORK/thoughts.jsonl" > "$MINI/data/thoughts.jsonl.gz"
  done_ vote
fi
[[ $STOP_AFTER != vote ]] || exit 0

echo "== 3/5 training: (a) contrastive only, plain queries; (b) O1E joint; (c) DEBATER"
train() {
  local arm=$1; shift
  stamp "train-$arm" && return
  timed "train-$arm" $PY -m o1e_tevatron.driver.train --model_name_or_path "$MODEL" --train_dir "$WORK/thoughts.jsonl" \
    --output_dir "$WORK/model-$arm" --report_to none --save_steps 25 --save_total_limit 1 \
    --max_steps "$STEPS" --per_device_train_batch_size "$BATCH" --train_n_passages "$GROUP" \
    --q_max_len "$Q_LEN" --p_max_len "$P_LEN" --thought_max_len "$T_LEN" \
    --lora --lora_r 16 --lora_alpha 32 --learning_rate "$LR" --warmup_ratio 0.1 --temperature 0.02 \
    --seed 42 --data_seed 42 --logging_steps 5 --disable_tqdm true \
    $([[ $DEVICE == cpu ]] && echo --use_cpu) "$@" 2>&1 | tee "$MINI/logs/train-$arm.log"
  done_ "train-$arm"
}
has_arm() { [[ " $ARMS " == *" $1 "* ]]; }
has_arm a && train a --gen_loss_weight 0 --plain_query_prob 1.0
has_arm b && train b --gen_loss_weight 0.2 --plain_query_prob 0.1
has_arm c && train c --family debater --debater_query_instruction \
  "Given a scientific claim, retrieve documents that support or refute the claim:"
[[ $STOP_AFTER != train ]] || exit 0

echo "== 4/5 evaluation on SciFact test and CoSQA dev"
evaluate() {
  local name=$1 dataset=$2 retriever=$3; shift 3
  stamp "eval-$name-${dataset//\//_}" && return
  timed "eval-$name-${dataset//\//_}" $PY -m o1e_pyserini.eval --dataset "$dataset" --retriever "$retriever" \
    --data-dir "$DATA_DIR" --output-dir "$MINI/results/$name" --device "$DEVICE" --batch-size 32 \
    --max-passage-length "$P_LEN" --dtype "$DTYPE" --hits 100 "$@"
  done_ "eval-$name-${dataset//\//_}"
}
for dataset in beir/scifact/test o1e/cosqa/dev; do
  has_arm a && evaluate a "$dataset" "o1e:$WORK/model-a" --mode fast
  has_arm b && evaluate b-fast "$dataset" "o1e:$WORK/model-b" --mode fast
  has_arm b && evaluate b-think "$dataset" "o1e:$WORK/model-b" --mode think --num-thoughts 3 --max-thought-tokens "$T_LEN" \
    --temperature "$THINK_T" --seed 0
  has_arm c && evaluate c "$dataset" "debater:$WORK/model-c"  # the task's instruction for each dataset
done
if has_arm a && ! stamp eval-a-teacher; then
  [[ -n ${TEACHER_PID:-} ]] || teacher_up
  for dataset in beir/scifact/test o1e/cosqa/dev; do
    evaluate a-teacher "$dataset" "o1e:$WORK/model-a" --mode think --num-thoughts 3 --max-thought-tokens "$T_LEN" \
      --temperature "$THINK_T" --seed 0 --thought-server "http://127.0.0.1:$PORT/v1" --thought-model "$TEACHER_MODEL"
  done
  done_ eval-a-teacher
fi

[[ $STOP_AFTER != eval ]] || exit 0
echo "== 5/5 paired t-tests"
run_of() { ls "$MINI/results/$1/${2//\//__}"/*.trec* | head -1; }  # committed runs are gzipped
for dataset in beir/scifact/test o1e/cosqa/dev; do
  slug=${dataset//\//_}
  for b in b-fast b-think a-teacher c; do
    [[ -d $MINI/results/$b ]] || continue
    $PY -m o1e_pyserini.eval ttest --dataset "$dataset" --data-dir "$DATA_DIR" --run-a "$(run_of a "$dataset")" \
      --run-b "$(run_of "$b" "$dataset")" --output "$MINI/results/ttest.$slug.a-vs-$b.json"
  done
  $PY -m o1e_pyserini.eval ttest --dataset "$dataset" --data-dir "$DATA_DIR" --run-a "$(run_of b-fast "$dataset")" \
    --run-b "$(run_of b-think "$dataset")" --output "$MINI/results/ttest.$slug.b-fast-vs-b-think.json"
done
[[ $STOP_AFTER != ttest ]] || exit 0

echo "== 6/6 adaptive thinking (b): operating points picked on SciFact train queries, applied to the test sets"
curve() {  # name dataset: nDCG@10 against the think rate per signal, from (b)'s fast and think runs
  local fast think; fast=$(run_of b-fast "$2"); think=$(run_of b-think "$2")
  $PY -m o1e_pyserini.eval adaptive-curve --dataset "$2" --data-dir "$DATA_DIR" --fast-run "$fast" \
    --think-run "$think" --fast-queries "${fast%%.trec*}.queries/thoughts.jsonl" \
    --think-queries "${think%%.trec*}.queries/thoughts.jsonl" --output "$MINI/results/adaptive/curve.$1.json" \
    --plot "$MINI/results/adaptive/curve.$1.png"
}
if has_arm b; then
  mkdir -p "$MINI/results/adaptive"
  evaluate b-fast beir/scifact/train "o1e:$WORK/model-b" --mode fast
  evaluate b-think beir/scifact/train "o1e:$WORK/model-b" --mode think --num-thoughts 3 --max-thought-tokens "$T_LEN" \
    --temperature "$THINK_T" --seed 0
  curve scifact-train beir/scifact/train
  for dataset in beir/scifact/test o1e/cosqa/dev; do
    curve "${dataset//\//_}" "$dataset"
    for signal in margin score-entropy model-entropy; do
      threshold=$($PY -c "import json,sys; p=json.load(open(sys.argv[1]))['operating_points'][sys.argv[2]]; print('' if p is None else repr(p['threshold']))" \
        "$MINI/results/adaptive/curve.scifact-train.json" "$signal")
      [[ -n $threshold ]] || { echo "thinking does not beat fast on the training queries: no operating point"; break; }
      evaluate "b-adaptive-$signal" "$dataset" "o1e:$WORK/model-b" --mode adaptive --adaptive-signal "$signal" \
        --think-threshold "$threshold" --num-thoughts 3 --max-thought-tokens "$T_LEN" --temperature "$THINK_T" --seed 0
    done
  done
fi
echo "done: logs in $MINI/logs, metrics and runs in $MINI/results"

echo "== 7/7 diagnostics on SciFact train queries (why (b) think trails fast): the query in the mean, shorter and cooler thoughts"
# the floor: SmolLM2 with o1e's layout and freshly added token rows, no training at all
evaluate untrained beir/scifact/test "o1e:$MODEL" --mode fast
if has_arm a && has_arm b; then
  evaluate a beir/scifact/train "o1e:$WORK/model-a" --mode fast
  evaluate b-think-with-query beir/scifact/train "o1e:$WORK/model-b" --mode think --num-thoughts 3 \
    --max-thought-tokens "$T_LEN" --temperature "$THINK_T" --seed 0 --query-vector thoughts+query
  evaluate b-think-16-tokens beir/scifact/train "o1e:$WORK/model-b" --mode think --num-thoughts 3 \
    --max-thought-tokens 16 --temperature "$THINK_T" --seed 0
  evaluate b-think-t0.1 beir/scifact/train "o1e:$WORK/model-b" --mode think --num-thoughts 3 \
    --max-thought-tokens "$T_LEN" --temperature 0.1 --seed 0
fi
echo "diagnostics done"
