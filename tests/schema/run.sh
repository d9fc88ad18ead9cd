#!/usr/bin/env bash
# Fuzzes the running server against its own OpenAPI document with schemathesis (from PyPI):
# every generated request, valid or not, must get no 5xx, and every response must match the
# document (status, content type, body schema). Two runs: ids as generated (mostly unknown), then
# ids of things that exist. Exits non-zero on any failure.
#
#   bash tests/schema/run.sh [database-url]    # default: the in-memory store
#
# Needs python3 with venv (schemathesis goes into target/schemathesis) and a built
# target/debug/threadline. ST_MAX_EXAMPLES (default 30) and ST_SEED tune the run.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/schemathesis
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi

data=$(mktemp -d)
out=$(mktemp)
args=(--host 127.0.0.1 --port 0 --data-dir "$data")
[ -z "${1:-}" ] || args+=(--database-url "$1")
target/debug/threadline "${args[@]}" >"$out" 2>"$data/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$data" "$out"' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$out" && break
  sleep 0.1
done
base=$(sed -n 's/^listening on //p' "$out")
[ -n "$base" ] || { echo "the server did not start:"; cat "$data/server.log"; exit 1; }

checks=not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance
run() {
  "$venv/bin/schemathesis" "$@" run "$base/openapi.json" --checks "$checks" \
    --max-examples "${ST_MAX_EXAMPLES:-30}" ${ST_SEED:+--seed "$ST_SEED"} \
    --no-color --warnings off
}

echo "=== schemathesis against $base (${1:-memory}): generated ids"
run

# Things to point the second run at.
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
post() { curl -sf -X POST -H 'content-type: application/json' "$base$1" -d "$2"; }
ST_ACCOUNT=$(post /api/accounts '{"name":"Ann"}' | json '["id"]')
other=$(post /api/accounts '{"name":"Bob"}' | json '["id"]')
ST_CONVERSATION=$(post "/api/account/$ST_ACCOUNT/conversations?with=$other" '' | json '["id"]')
ST_THREAD=$(post /api/threads '{"memberIds":["me","ann"]}' | json '["id"]')
echo "hello" >"$data/hello.txt"
ST_FILE=$(curl -sf -F "file=@$data/hello.txt" "$base/api/files" | json '["id"]')
ST_MESSAGE=$(post "/api/threads/$ST_THREAD/messages" "{\"body\":\"hi\",\"fileIds\":[\"$ST_FILE\"]}" \
  | json '["message"]["id"]')
export ST_ACCOUNT ST_CONVERSATION ST_THREAD ST_FILE ST_MESSAGE

echo "=== schemathesis against $base (${1:-memory}): ids that exist"
run --config-file tests/schema/with-data.toml
