#!/usr/bin/env bash
# Issue 10's soak: `.ci/run` from a fresh clone of this checkout's HEAD (new venv included), RUNS times in a row,
# while a second clone runs the whole suite in a loop beside it (the "busy 2-core machine"). Each clone is removed
# when its runs end (a clone with its venv is about 7 GB). Logs and wall times go to SOAK_DIR:
#   A_<n>.log / A.times (the .ci/run runs), B_<n>.log / B.times (the suite beside them).
#   bash scripts/soak.sh [RUNS=5]          # SOAK_DIR=/tmp/soak by default; `touch $SOAK_DIR/STOP` stops it
# Needs ../shared beside the checkout (the fixtures); the second clone reuses this checkout's .venv.
set -u
RUNS=${1:-5}
SOAK_DIR=${SOAK_DIR:-/tmp/soak}
SRC=$(cd "$(dirname "$0")/.." && pwd)
SHARED=$(realpath "$SRC/../shared")
rm -rf "$SOAK_DIR/A" "$SOAK_DIR/B" "$SOAK_DIR"/*.log "$SOAK_DIR"/*.times "$SOAK_DIR/A.done" "$SOAK_DIR/STOP"
mkdir -p "$SOAK_DIR/A" "$SOAK_DIR/B"
ln -s "$SHARED" "$SOAK_DIR/A/shared"
git clone -q "$SRC" "$SOAK_DIR/B/main" && ln -s "$SHARED" "$SOAK_DIR/B/shared" && ln -s "$SRC/.venv" "$SOAK_DIR/B/main/.venv"
( cd "$SOAK_DIR/B/main"; n=0
  while [ ! -f "$SOAK_DIR/A.done" ]; do
    n=$((n+1)); s=$(date +%s)
    CI=true bash scripts/test.sh > "$SOAK_DIR/B_$n.log" 2>&1
    echo "B run $n rc=$? $(( $(date +%s)-s ))s" >> "$SOAK_DIR/B.times"
  done ) &
for i in $(seq 1 "$RUNS"); do
  [ -f "$SOAK_DIR/STOP" ] && break
  rm -rf "$SOAK_DIR/A/main"
  git clone -q "$SRC" "$SOAK_DIR/A/main"
  s=$(date +%s)
  ( cd "$SOAK_DIR/A/main" && CI=true bash .ci/run ) > "$SOAK_DIR/A_$i.log" 2>&1
  rc=$?
  echo "A run $i rc=$rc $(( $(date +%s)-s ))s load=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$SOAK_DIR/A.times"
done
touch "$SOAK_DIR/A.done"
wait
rm -rf "$SOAK_DIR/A/main" "$SOAK_DIR/B/main"
