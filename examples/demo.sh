#!/usr/bin/env bash
# The embedded default: mock tenants of the five vendors (Netskope :8089, IBM
# Security Verify :8090, MuleSoft :8091, MaaS360 :8093, Mimecast :8094 on
# 127.0.0.1) and the siphon daemon on examples/demo.toml, until Ctrl-C. Run through `make run`, which builds the binaries and the collectors
# first.
set -euo pipefail
cd "$(dirname "$0")/.."

export MULESOFT_CLIENT_ID=demo-client MULESOFT_CLIENT_SECRET=demo-secret
export NETSKOPE_API_TOKEN=demo-token VERIFY_CLIENT_ID=demo-client VERIFY_CLIENT_SECRET=demo-secret
export MIMECAST_CLIENT_ID=demo-mc-client MIMECAST_CLIENT_SECRET=demo-mc-secret
export MAAS360_PASSWORD=demo-password MAAS360_APP_ACCESS_KEY=Xk29fQ7pLm
mkdir -p target
mocks=()
trap 'for m in "${mocks[@]}"; do kill "$m" 2>/dev/null || true; wait "$m" 2>/dev/null || true; done' EXIT

# start_mock VENDOR PORT ARGS...: `mock-vendor VENDOR` in the background, logging to
# target/mock-vendor-VENDOR.log; returns once it listens.
start_mock() {
  local vendor=$1 port=$2
  shift 2
  local log=target/mock-vendor-$vendor.log
  ./target/debug/mock-vendor "$vendor" --port "$port" "$@" >"$log" 2>&1 &
  mocks+=($!)
  for _ in $(seq 1 100); do
    grep -q 'listening' "$log" && return 0
    kill -0 "${mocks[-1]}" 2>/dev/null || { echo "mock-vendor $vendor failed to start:"; cat "$log"; exit 1; }
    sleep 0.1
  done
  echo "mock-vendor $vendor did not start within 10 s"
  exit 1
}

start_mock netskope 8089 --secret "$NETSKOPE_API_TOKEN" --streams dlp,malware,policy \
  --initial 250 --page-size 100 --new-every 10 --new-batch 5
start_mock ibm-verify 8090 --secret "$VERIFY_CLIENT_SECRET" --set client_id="$VERIFY_CLIENT_ID" \
  --initial 250 --new-every 10 --new-batch 5
start_mock mulesoft 8091 --secret "$MULESOFT_CLIENT_SECRET" --set client_id="$MULESOFT_CLIENT_ID" \
  --set quota=40 --initial 250 --new-every 10 --new-batch 5
start_mock maas360 8093 --secret "$MAAS360_PASSWORD" --initial 250 --new-every 10 --new-batch 5

start_mock mimecast 8094 --secret "$MIMECAST_CLIENT_SECRET" --set client_id="$MIMECAST_CLIENT_ID" \
  --initial 250 --page-size 100 --new-every 10 --new-batch 5
echo "== mock Mimecast tenant (API 2.0 SIEM batch files on pre-signed URLs, audit events; API 1.0 too) on http://127.0.0.1:8094"
echo "== mock Netskope tenant on http://127.0.0.1:8089, mock IBM Security Verify tenant on http://127.0.0.1:8090"
echo "   (logs: target/mock-vendor-*.log); 5 new alerts / events per type every 10 s"
echo "== mock MuleSoft Anypoint control plane (audit log, 40 calls a minute) on http://127.0.0.1:8091"
echo "== mock IBM MaaS360 tenant (devices, action history, admin audit, compliance events) on http://127.0.0.1:8093"
echo "== siphon writes NDJSON under ./out and checkpoints under ./state; Ctrl-C stops all"
echo "== status page: http://127.0.0.1:9464/  (also: ./target/debug/siphon status --config examples/demo.toml)"
echo "   after editing examples/demo.toml or replacing a .wasm: kill -HUP <pid of 'siphon started'> reloads them"
./target/debug/siphon run --config examples/demo.toml
