#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite, Ray tests included.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not ray"`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# Real services for the tests, both on 127.0.0.1: a throwaway PostgreSQL cluster
# (the store tests run on it and on SQLite) and Debian's Chromium (browser tests).
# Without root they cannot be installed and those tests skip, saying why.
if pg_exports="$(bash scripts/postgres.sh)"; then
  eval "$pg_exports"
else
  echo "test.sh: no PostgreSQL; the PostgreSQL store tests will skip" >&2
fi
bash scripts/browser.sh || echo "test.sh: no Chromium; the browser tests will skip" >&2
export VLLM_HOST_IP=127.0.0.1 VLLM_CPU_KVCACHE_SPACE=1 RAY_USAGE_STATS_ENABLED=0
# Ray otherwise swaps 127.0.0.1 for the machine's reachable address.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
.venv/bin/python -m fraudline.tinymodel var/models/tiny
exec .venv/bin/python -m pytest "$@"
