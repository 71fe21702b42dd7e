#!/usr/bin/env bash
# The embedded default: a mock Netskope tenant on 127.0.0.1:8089 and the
# siphon daemon on examples/demo.toml, until Ctrl-C. Run through `make run`,
# which builds the binaries and the collector first.
set -euo pipefail
cd "$(dirname "$0")/.."

export NETSKOPE_API_TOKEN=demo-token
mkdir -p target
log=target/mock-vendor-netskope.log
./target/debug/mock-vendor netskope --port 8089 --secret "$NETSKOPE_API_TOKEN" --streams dlp,malware,policy \
  --initial 250 --page-size 100 --new-every 10 --new-batch 5 >"$log" 2>&1 &
mock=$!
trap 'kill "$mock" 2>/dev/null || true; wait "$mock" 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  grep -q 'listening' "$log" && break
  kill -0 "$mock" 2>/dev/null || { echo "mock-vendor netskope failed to start:"; cat "$log"; exit 1; }
  sleep 0.1
done
grep -q 'listening' "$log" || { echo "mock-vendor netskope did not start within 10 s"; exit 1; }

echo "== mock Netskope tenant on http://127.0.0.1:8089 (log: $log); 5 new alerts per type every 10 s"
echo "== siphon writes NDJSON under ./out and checkpoints under ./state; Ctrl-C stops both"
./target/debug/siphon run --config examples/demo.toml
