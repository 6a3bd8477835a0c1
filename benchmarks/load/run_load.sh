#!/usr/bin/env bash
# Starts revenge on a free loopback port with the demo library, runs the viewers, stops it.
# usage: benchmarks/load/run_load.sh [viewer options…]     (make load / make soak)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DATA=$(mktemp -d)
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REVENGE_LOGGING__LEVEL=warning REVENGE_RATE_LIMIT__ENABLED=false REVENGE_PLAYBACK__MAX_SESSIONS=5000 \
  REVENGE_PLAYBACK__MAX_SESSIONS_PER_KEY=5000 \
  $PY -m revenge serve --port "$PORT" --data-dir "$DATA" >"$DATA/server.log" 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$PORT/health/live" >/dev/null 2>&1 && [ -f "$DATA/api_key" ] && break
  sleep 0.2
done
sleep 2  # the first library scan
$PY benchmarks/load/viewers.py --url "http://127.0.0.1:$PORT" --key "$(cat "$DATA/api_key")" "$@"
