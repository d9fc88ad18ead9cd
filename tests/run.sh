#!/usr/bin/env bash
# Runs every test: installs what the suites need when it is missing, starts PostgreSQL and
# Redis on loopback, then runs the whole suite against each storage backend (in memory,
# SQLite, PostgreSQL; the PostgreSQL pass also runs two nodes through Redis): the Rust tests
# (`cargo test`), schemathesis against the server's OpenAPI document (`tests/schema/run.sh`),
# then the JavaScript suites with the real socket.io-client (`node --test`), in `open` and in
# `jwt` mode. Ends with one line: `summary: N passed, N failed`.
#
#   bash tests/run.sh            # all three backends
#   bash tests/run.sh memory     # one of: memory sqlite postgres
#
# Needs: Rust (cargo), Node 20.14+ with npm, python3, and apt-get (Debian/Ubuntu) for
# chromium, postgresql, redis-server and python3-venv when they are not installed yet.
set -euo pipefail
cd "$(dirname "$0")/.."

backends=("${@:-memory sqlite postgres}")
# shellcheck disable=SC2206
backends=(${backends[*]})

# A JavaScript test that hangs fails after this with its name; a pass still running after
# PASS_DEADLINE is stopped (with every server it started) and counted as failed.
TEST_TIMEOUT_MS=120000
PASS_DEADLINE=600

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (browser example test)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
  echo "installing python3-venv (schemathesis)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
fi

for dir in tests/js client-examples; do
  [ -d "$dir/node_modules" ] || (cd "$dir" && npm ci --no-audit --no-fund)
done

# PostgreSQL and Redis for the durable and multi-node passes.
for line in $(bash tests/services.sh); do export "${line?}"; done

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Adds what a runner reported to the totals; a runner that failed without reporting a
# failure (a build error, a crash, the deadline) counts as one.
tally() { # status pass-count fail-count
  passed=$((passed + $2))
  failed=$((failed + $3))
  if [ "$1" -ne 0 ] && [ "$3" -eq 0 ]; then failed=$((failed + 1)); fi
}

cargo_pass() {
  local status=0
  cargo test --all-targets 2>&1 | tee "$log" || status=$?
  tally "$status" \
    "$(awk '/^test result:/ {n += $4} END {print n + 0}' "$log")" \
    "$(awk '/^test result:/ {n += $6} END {print n + 0}' "$log")"
}

js_pass() { # identity [suites to skip...]
  local identity=$1; shift
  local suites=() status=0
  for file in tests/js/*.test.mjs; do
    name=$(basename "$file")
    [[ " $* " == *" $name "* ]] || suites+=("$name")
  done
  echo "=== JavaScript suites, $identity mode"
  (cd tests/js && THREADLINE_BIN="$PWD/../../target/debug/threadline" \
    THREADLINE_TEST_IDENTITY="$identity" \
    timeout --kill-after=10 "$PASS_DEADLINE" node --test --test-reporter=spec \
      --test-timeout="$TEST_TIMEOUT_MS" --test-force-exit "${suites[@]}") 2>&1 | tee "$log" \
    || status=$?
  [ "$status" -ne 124 ] || echo "JavaScript suites ($identity mode) still running after ${PASS_DEADLINE}s: stopped"
  tally "$status" \
    "$(awk '/^ℹ pass / {n += $3} END {print n + 0}' "$log")" \
    "$(awk '/^ℹ fail / {n += $3} END {print n + 0}' "$log")"
}

# schemathesis against the running server and its OpenAPI document: two runs per backend.
schema_pass() { # backend database
  local url="" status=0
  case "$1" in
    memory) ;;
    sqlite) url="sqlite://$(mktemp -d)/threadline.db" ;;
    postgres)
      local name="threadline_schema_$$_$RANDOM"
      psql "$2" -q -c "CREATE DATABASE $name"
      url="${2%/*}/$name" ;;
  esac
  bash tests/schema/run.sh $url 2>&1 | tee "$log" || status=$?
  local clean
  clean=$(grep -c "No issues found" "$log" || true)
  tally "$status" "$clean" $((2 - clean))
}

cargo build --all-targets
for backend in "${backends[@]}"; do
  case "$backend" in
    memory) database=memory ;;
    sqlite) database=sqlite ;;
    postgres) database="$THREADLINE_TEST_POSTGRES" ;;
    *) echo "unknown backend $backend (memory, sqlite, postgres)" >&2; exit 2 ;;
  esac
  echo "=== test suite against the $backend store"
  export THREADLINE_TEST_DATABASE="$database"
  cargo_pass
  schema_pass "$backend" "$database"
  js_pass open
  # `auth` and `limits` configure identity themselves and ran in the open pass.
  js_pass jwt auth.test.mjs limits.test.mjs
done

echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
