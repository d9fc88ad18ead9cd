#!/usr/bin/env bash
# Runs every test: installs what the suites need when it is missing, then `cargo test`.
#
#   bash tests/run.sh
#
# Needs: Rust (cargo), Node 20+ with npm. Installs Chromium (Debian packages chromium and
# chromium-driver) for the browser example test when it is missing and apt-get is available.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${need_apt[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "missing ${need_apt[*]}: install them with your package manager" >&2
    exit 1
  fi
fi

for dir in tests/js client-examples; do
  [ -d "$dir/node_modules" ] || (cd "$dir" && npm ci --no-audit --no-fund)
done

cargo test --all-targets "$@"
