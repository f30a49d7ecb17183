#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs every test.
#   unit + snapshots   (synth, config validation, constructs)         — no services
#   integration        (real PostgreSQL 15 and Redis 7, Vault test server) — started by the fixtures
#   e2e                (real Docker engine: cdktf deploy/destroy, terraform/tofu validate)
# Nothing is skipped: a missing component fails the run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --with-test-servers
env_file=$(scripts/bootstrap.sh --require-providers --print-env | tail -n 1)
# shellcheck disable=SC1090
. "$env_file"
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CHECKPOINT_DISABLE=1
export PATH="$PWD/.venv/bin:$PATH"

echo "[test] ruff"
ruff check --output-format concise .
ruff format --check . >/dev/null || { ruff format --check .; exit 1; }

rm -f benchmarks/out/e2e-timings.txt
status=0
python -m pytest -n 2 --dist loadgroup -p no:cacheprovider "$@" || status=$?
[[ -f benchmarks/out/e2e-timings.txt ]] && cat benchmarks/out/e2e-timings.txt
exit "$status"
