#!/usr/bin/env bash
# schemathesis against the agent's own OpenAPI document: starts the `dashboard` example on a free
# loopback port, runs every check, stops the server however the run ends.
set -euo pipefail
cd "$(dirname "$0")/../../.."
venv=target/apivenv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi
cargo build --quiet -p surgewall-agent --example dashboard
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/debug/examples/dashboard --port "$port" --seconds 300 > target/dashboard.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/healthz')" 2>/dev/null; then break; fi
  sleep 0.1
done
# From target/: schemathesis keeps its cache (.schemathesis/) in the working directory.
cd target
apivenv/bin/schemathesis --config-file ../agent/tests/api/schemathesis.toml \
  run "http://127.0.0.1:$port/api/resilience/openapi.json" --checks all \
  --exclude-path-regex '^/api/resilience/(ws|events)$'
# (The live streams never end; agent/tests/live.rs drives them with real clients.)
