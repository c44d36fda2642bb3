#!/usr/bin/env bash
# Fuzzes the service against its own OpenAPI document with schemathesis:
# no answer may be a server error (5xx) or contradict the document.
#
# schemathesis invents endpoint URLs that the service would deliver to, so
# the service and schemathesis run inside a private network namespace
# (`unshare -n`, needs root): only the loopback interface exists there and
# no packet can leave the machine.
#
# Usage: .ci/schemathesis.sh   (MAX_EXAMPLES=<n> per operation, default 30)
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
target="${CARGO_TARGET_DIR:-target}"
venv="$(realpath -m "$target")/schemathesis-venv"

if [ "${1:-}" != "--inside-namespace" ]; then
  # Everything that needs the network happens here, before unshare.
  if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
  fi
  cargo build --quiet --bin hookrelay
  exec unshare -n "$0" --inside-namespace
fi

ip link set lo up
work="$(mktemp -d)"
address=127.0.0.1:8080
admin_key="hrk_admin_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

DATABASE_URL="sqlite://$work/hookrelay.db" HOOKRELAY_LISTEN="$address" \
  HOOKRELAY_ADMIN_KEY="$admin_key" RUST_LOG="${RUST_LOG:-warn}" \
  "$(realpath "$target")/debug/hookrelay" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://$address/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

# One of each resource, so that the operations on them reach real rows
# (random ids would only ever meet 404s); schemathesis.toml pins the path
# parameters to them.
call() {
  curl -fsS -X "$1" "http://$address$2" -H "Authorization: Bearer $admin_key" \
    -H 'Content-Type: application/json' ${3:+-d "$3"}
}
field() { python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
export FUZZ_TENANT=acme
call POST /v1/tenants '{"id": "acme", "name": "Acme"}' >"$work/tenant.json"
export FUZZ_KEY="$(field api_key_id <"$work/tenant.json")"
call POST /v1/tenants/acme/event-types '{"name": "invoice.paid"}' >/dev/null
export FUZZ_EVENT_TYPE=invoice.paid
# No route leaves the namespace: deliveries fail at once (dns).
export FUZZ_ENDPOINT="$(call POST /v1/tenants/acme/endpoints '{"url": "https://example.com/hook"}' | field id)"
export FUZZ_EVENT="$(call POST /v1/tenants/acme/events '{"type": "invoice.paid", "payload": {}}' | field id)"
export FUZZ_DELIVERY="$(call GET "/v1/tenants/acme/deliveries?endpoint_id=$FUZZ_ENDPOINT" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')"

# From the temporary directory, where schemathesis leaves its cache.
status=0
config="$PWD/.ci/schemathesis.toml"
(cd "$work" && "$venv/bin/schemathesis" --config-file "$config" run "http://$address/openapi.json" \
  -H "Authorization: Bearer $admin_key" \
  --checks not_a_server_error,response_schema_conformance \
  --max-examples "${MAX_EXAMPLES:-30}" \
  --max-time 240 \
  --seed "${SEED:-1}" \
  --generation-database none \
  --no-color) || status=$?
if [ "$status" -ne 0 ]; then
  cp "$work/server.log" "$target/schemathesis-server.log"
  echo "--- server log: $target/schemathesis-server.log; its errors:"
  grep -E " (ERROR|WARN) " "$work/server.log" | grep -v "hookrelay::actors::alerts" | tail -n 30 || true
fi
exit "$status"
