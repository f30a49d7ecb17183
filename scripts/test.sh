#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then runs every test.
#   unit + snapshots   (synth, config validation, constructs)         — no services
#   integration        (real PostgreSQL 15 and Redis 7, Vault test server) — started by the fixtures
#   e2e                (real Docker engine and test images)
# Nothing is skipped: a missing component fails the run. Extra arguments go to pytest.
#
# The deploy scenarios and `validate` of every stack (tests marked needs_providers) need the
# kreuzwerker/docker and hashicorp/external provider binaries: from the registry, or on an offline
# machine from the filesystem mirror (placed by hand; CI has neither). They run with
# `scripts/test.sh --deploy`, which also prepares the ssh:// target (sshd binary, user `deploy`) and
# fails when a provider is missing; the default run does not collect them.
set -euo pipefail
cd "$(dirname "$0")/.."

marker=(-m "not needs_providers")
bootstrap_flags=(--print-env)
if [[ ${1:-} == --deploy ]]; then
  shift
  marker=(-m needs_providers)
  bootstrap_flags+=(--require-providers --ssh-target)
fi

scripts/setup.sh --with-test-servers
env_file=$(scripts/bootstrap.sh "${bootstrap_flags[@]}" | tail -n 1)
# shellcheck disable=SC1090
. "$env_file"
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CHECKPOINT_DISABLE=1
export PATH="$PWD/.venv/bin:$PATH"

echo "[test] ruff"
ruff check --output-format concise .
ruff format --check . >/dev/null || { ruff format --check .; exit 1; }
echo "[test] mypy"
mypy  # nexanest_db/ and tests/support/, configured in pyproject.toml [tool.mypy]

rm -f benchmarks/out/e2e-timings.txt
status=0
python -m pytest -n 2 -p no:cacheprovider "${marker[@]}" "$@" || status=$?
[[ -f benchmarks/out/e2e-timings.txt ]] && cat benchmarks/out/e2e-timings.txt
exit "$status"
