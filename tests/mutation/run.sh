#!/usr/bin/env bash
# The mutation campaign of o1e's core (issue 24), one command; see tests/mutation/campaign.py.
#   bash tests/mutation/run.sh [module ...] [--report]
# Runs at the lowest CPU priority (nice 19): it only takes idle CPU from whatever else runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec nice -n 19 "${PYTHON:-.venv/bin/python}" tests/mutation/campaign.py "$@"
