#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent), then runs the whole suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
# Browser tests drive Debian's Chromium; the emoji font makes their screenshots readable.
if ! dpkg -s chromium fonts-noto-color-emoji >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-color-emoji >/dev/null
  else
    echo "Browser tests need Debian's chromium: sudo apt-get install chromium fonts-noto-color-emoji" >&2
  fi
fi
bash scripts/setup.sh --dev
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
