#!/usr/bin/env bash
# Runs every test: installs what the suites need when it is missing, starts PostgreSQL and
# Redis on loopback, then runs the whole suite (Rust + JavaScript) against each storage
# backend: in memory, SQLite, and PostgreSQL (which also runs the two-node Redis test).
#
#   bash tests/run.sh            # all three backends
#   bash tests/run.sh memory     # one of: memory sqlite postgres
#
# Needs: Rust (cargo), Node 20.14+ with npm, and apt-get (Debian/Ubuntu) for chromium,
# postgresql and redis-server when they are not installed yet.
set -euo pipefail
cd "$(dirname "$0")/.."

backends=("${@:-memory sqlite postgres}")
# shellcheck disable=SC2206
backends=(${backends[*]})

sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (browser example test)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

for dir in tests/js client-examples; do
  [ -d "$dir/node_modules" ] || (cd "$dir" && npm ci --no-audit --no-fund)
done

# PostgreSQL and Redis for the durable and multi-node passes.
for line in $(bash tests/services.sh); do export "${line?}"; done

cargo build --all-targets
for backend in "${backends[@]}"; do
  case "$backend" in
    memory) database=memory ;;
    sqlite) database=sqlite ;;
    postgres) database="$THREADLINE_TEST_POSTGRES" ;;
    *) echo "unknown backend $backend (memory, sqlite, postgres)" >&2; exit 2 ;;
  esac
  echo "=== test suite against the $backend store"
  THREADLINE_TEST_DATABASE="$database" cargo test --all-targets
done
