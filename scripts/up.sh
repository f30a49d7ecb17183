#!/usr/bin/env bash
# The main job on a fresh machine: install, synthesize every stack, then deploy local-db onto the
# local Docker engine (post-apply hooks included). Extra arguments go to `cdktf deploy`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
env_file=$(scripts/bootstrap.sh --require-providers --print-env | tail -n 1)
# shellcheck disable=SC1090
. "$env_file"
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CHECKPOINT_DISABLE=1
export PATH="$PWD/.venv/bin:$PATH"

echo "[up] synthesizing all stacks into cdktf.out/"
python main.py
echo "[up] deploying local-db"
node_modules/.bin/cdktf deploy local-db --auto-approve "$@"
echo "[up] local-db is up: $(nndb --help >/dev/null && echo 'nndb hooks run|migrate status|backup list|secrets check local-db')"
