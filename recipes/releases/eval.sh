#!/usr/bin/env bash
# Released checkpoints loaded as their authors saved them (o1e_tevatron.families.release), on SciFact test (nDCG@10),
# through the harness and through mteb; needs the hub and a GPU (not run here):
#   - DEBATER-2B (bigtailwolf/DEBATER-2B): a LoRA adapter over openbmb/MiniCPM-2B-dpo-bf16 in llm2vec's layout.
#     MiniCPM ships its own modeling code: --trust-remote-code runs it (read it first). If the adapter's
#     adapter_config.json names a base path of its authors' machine, set base_model_name_or_path there
#     to openbmb/MiniCPM-2B-dpo-bf16.
#   - O1E_MODEL (optional): an O1 Embedder checkpoint in its authors' layout (FlagEmbedding): an adapter saved
#     with its token rows (modules_to_save), or their merged_model/; searched thinking (3 thoughts) and fast.
# expected.yaml: DEBATER-2B's claimed number and a community reproduction of the release's own inference.
source "$(dirname "$0")/../common.sh"
RUNS=${RUNS:-$WORK/runs/releases}
DEBATER=${DEBATER:-$WORK/models/DEBATER-2B}
O1E_MODEL=${O1E_MODEL:-}

[[ -f $DEBATER/llm2vec_config.json ]] || python -c "import sys; from huggingface_hub import snapshot_download; \
snapshot_download('bigtailwolf/DEBATER-2B', local_dir=sys.argv[1])" "$DEBATER"

# mteb_ndcg MODEL NAME [FamilyEncoder options as name=json ...]: mteb's SciFact with the same encoders as the harness
mteb_ndcg() {
  python - "$@" <<'PY'
import json, sys
import mteb
from o1e_pyserini.mteb import FamilyEncoder
model_dir, name, *options = sys.argv[1:]
options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in options)}
model = FamilyEncoder(model_dir, device="cuda", batch_size=64, **options)
result = mteb.evaluate(model, mteb.get_tasks(tasks=["SciFact"]), cache=None)
print(f"mteb {name}: SciFact nDCG@10 {result.task_results[0].scores['test'][0]['ndcg_at_10']:.4f}")
PY
}

# DEBATER-2B: SciFact's DEBATER instruction; the last step's vector (the release's search), and the best of 8 steps
evaluate beir/scifact/test "debater:$DEBATER" "$RUNS/debater-2b" --trust-remote-code --dtype bfloat16
evaluate beir/scifact/test "debater:$DEBATER" "$RUNS/debater-2b-max-steps" --trust-remote-code --dtype bfloat16 \
  --debater-scoring max-steps
mteb_ndcg "$DEBATER" debater-2b trust_remote_code=true

if [[ -n $O1E_MODEL ]]; then
  evaluate beir/scifact/test "o1e:$O1E_MODEL" "$RUNS/o1e-authors-think" --mode think --num-thoughts 3 --dtype bfloat16
  evaluate beir/scifact/test "o1e:$O1E_MODEL" "$RUNS/o1e-authors-fast" --mode fast --dtype bfloat16
  mteb_ndcg "$O1E_MODEL" o1e-authors-fast mode='"fast"'
fi
python -m o1e_pyserini.eval compare --expected "$RECIPES/releases/expected.yaml" --results "$RUNS"
