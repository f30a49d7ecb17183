#!/usr/bin/env bash
# The main job on a fresh machine: install, synthesize every stack, then deploy local-db onto the
# local Docker engine (post-apply hooks included). Extra arguments go to `cdktf deploy`.
#
# With registry access (a laptop): Terraform's normal provider installation and the official images
# (the stack pulls postgres:15, timescale/timescaledb:latest-pg15, redis:7-alpine).
# On an offline build machine (no registry answers): the providers come from the filesystem mirror
# (scripts/bootstrap.d/providers.sh) and the official images cannot be pulled, so it deploys a copy
# of the project (.tools/offline-local-db/, git-ignored) whose local-db points at the test stand-ins, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CHECKPOINT_DISABLE=1
export PATH="$PWD/.venv/bin:$PATH"

echo "[up] synthesizing all stacks into cdktf.out/"
python main.py
ls cdktf.out/stacks/*/cdk.tf.json

env_file=$(scripts/bootstrap.sh --print-env --images-if-offline | tail -n 1)
# shellcheck disable=SC1090
. "$env_file"
if [[ ${NNDB_PROVIDERS_READY:-0} != 1 ]]; then
  echo "[up] synth done; NOT deploying local-db: no registry answers and provider(s) ${NNDB_PROVIDERS_MISSING:-?} are not in the mirror ${NNDB_PROVIDER_MIRROR:-} (see scripts/bootstrap.sh --help)" >&2
  exit 1
fi

project=$PWD
if [[ ${NNDB_IMAGE_REGISTRY_REACHABLE:-0} != 1 ]]; then
  [[ ${NNDB_TEST_IMAGES_READY:-0} == 1 ]] || { echo "[up] offline and the stand-in images are missing (scripts/bootstrap.sh builds them)" >&2; exit 1; }
  project=$PWD/.tools/offline-local-db
  python -m tests.support.standins offline-project "$project"
  images=$(awk '!/^#/ && NF { printf "%s%s", sep, $2; sep = ", " }' tests/images/tags.txt)
  echo "[up] offline build machine: deploying local-db from $project with the test stand-in images ($images) and providers ${NNDB_PROVIDERS_AVAILABLE} from the mirror ${NNDB_PROVIDER_MIRROR}"
else
  echo "[up] deploying local-db with the official images and providers from ${NNDB_PROVIDER_SOURCE:-registry} (${NNDB_PROVIDERS_AVAILABLE})"
fi
cd "$project"
"$OLDPWD/node_modules/.bin/cdktf" deploy local-db --auto-approve "$@"
echo "[up] local-db is up; try: nndb migrate status local-db, nndb backup list local-db (from $project)"
