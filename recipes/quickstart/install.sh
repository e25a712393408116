#!/usr/bin/env bash
# Installs o1e with its search, mteb and test extras into ./.venv (created if absent).
# torch is pinned through constraints.txt: an unpinned resolve would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[pyserini,mteb,dev]"
