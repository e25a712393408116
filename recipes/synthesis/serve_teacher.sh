#!/usr/bin/env bash
# The paper's teacher (sec. 2.2): Llama-3.1-70B-Instruct behind vLLM's OpenAI-compatible server,
# tensor parallel over 8 GPUs. Needs the `vllm` extra on a GPU machine (vLLM does not run on CPU).
# Set TEACHER_API_KEY to require a key; synthesize.sh reads the same variable.
set -euo pipefail
MODEL=${MODEL:-meta-llama/Llama-3.1-70B-Instruct}
PORT=${PORT:-8000}
exec vllm serve "$MODEL" \
  --tensor-parallel-size "${TP:-8}" \
  --port "$PORT" \
  --max-model-len "${MAX_MODEL_LEN:-8192}" \
  --gpu-memory-utilization 0.92 \
  ${TEACHER_API_KEY:+--api-key "$TEACHER_API_KEY"}
