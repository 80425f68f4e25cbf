#!/usr/bin/env bash
# Creates .venv and installs FP-Studio. Usage: bash scripts/setup.sh [--dev]
# TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 selects another torch build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1 --index-url "$TORCH_INDEX_URL"
else
  .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
fi
if [ "${1:-}" = "--dev" ]; then
  .venv/bin/pip install -q -r requirements-dev.txt
else
  .venv/bin/pip install -q -r requirements.txt
fi
