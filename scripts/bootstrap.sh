#!/usr/bin/env bash
# NexaNest database tier: the tools a synth, a deploy and the tests need, each cached under
# ${NNDB_TOOLS_DIR:-<repo>/.tools}. Idempotent; a warm run takes a second or two.
#
#   scripts/bootstrap.sh [options]      (--help for the options)
#
# One piece per job, in scripts/bootstrap.d/ (each file's header says what it installs and why):
#   terraform.sh    1. the Terraform-compatible binary cdktf drives (PATH, else OpenTofu via the Go module proxy)
#   providers.sh    2. where `terraform init` gets the pinned providers: the registry, or (offline) a
#                      filesystem mirror whose binaries were placed by hand; the CLI config; locking
#   engine.sh       3. a Docker engine (Debian's docker.io) when none answers
#   test-images.sh  4. the stand-in images the tests use (nexanest-fixture/..., never the official names)
#   ssh-target.sh   5. with --ssh-target: sshd binary and the `deploy` user for the ssh:// deploy test
#   env-file.sh        <tools>/env.sh to source afterwards
#   common.sh          shared helpers (messages, logged steps, apt-get)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PIECES=$REPO_ROOT/scripts/bootstrap.d
TOOLS_DIR=${NNDB_TOOLS_DIR:-$REPO_ROOT/.tools}

usage() {
	cat <<USAGE
Usage: scripts/bootstrap.sh [options]

Prepares the tools for synth/deploy and the Docker test images; caches everything in
\${NNDB_TOOLS_DIR:-<repo>/.tools} and writes <tools>/env.sh to source afterwards.

Options:
  --providers=SOURCE   auto (default), registry or mirror (same as NNDB_PROVIDER_SOURCE); auto uses
                       the registry when it answers, else the filesystem mirror (offline machines)
  --require-providers  fail when a pinned provider is not available (default: warn, continue, and
                       record it in env.sh as NNDB_PROVIDERS_READY=0)
  --no-images          do not build the test images (engine and tools only)
  --images-if-offline  build the test images only when no container registry answers (scripts/up.sh)
  --no-engine          do not start a Docker engine (implies --no-images)
  --tools-only         same as --no-engine: Terraform binary, providers, CLI config, env file
  --ssh-target         also prepare what the ssh:// deploy test needs (sshd binary, user 'deploy')
  --build-tofu         build OpenTofu and use it even when tofu/terraform is on PATH (NNDB_FORCE_TOFU_BUILD=1)
  --rebuild-images     rebuild the test images even when their fixture hash matches
  --print-env          print the env file's path on stdout at the end (for scripts)
  -h, --help           this help

Offline provider mirror (placed by hand; this project ships no recipe that builds providers):
  <tools>/providers/mirror/registry.terraform.io/<namespace>/<type>/<version>/<os>_<arch>/terraform-provider-<type>_v<version>

Environment: NNDB_TOOLS_DIR, NNDB_PROVIDER_SOURCE, NNDB_FORCE_TOFU_BUILD=1, NNDB_DOCKER_WAIT (seconds,
default 60), NNDB_DEBIAN_MIRROR (default: the Debian mirror apt uses), NNDB_KEEP_LEGACY_STANDIN_TAGS=1,
GO (go binary).
USAGE
}

WANT_ENGINE=1
WANT_IMAGES=1
IMAGES_IF_OFFLINE=0
WANT_SSH_TARGET=0
FORCE_TOFU=${NNDB_FORCE_TOFU_BUILD:-0}
REQUIRE_PROVIDERS=${NNDB_REQUIRE_PROVIDERS:-0}
PROVIDER_SOURCE_WANTED=${NNDB_PROVIDER_SOURCE:-auto}
REBUILD_IMAGES=0
PRINT_ENV=0
while (($#)); do
	case $1 in
	--providers=*) PROVIDER_SOURCE_WANTED=${1#--providers=} ;;
	--require-providers) REQUIRE_PROVIDERS=1 ;;
	--no-images) WANT_IMAGES=0 ;;
	--images-if-offline) IMAGES_IF_OFFLINE=1 ;;
	--no-engine | --tools-only) WANT_ENGINE=0 WANT_IMAGES=0 ;;
	--ssh-target) WANT_SSH_TARGET=1 ;;
	--build-tofu) FORCE_TOFU=1 ;;
	--rebuild-images) REBUILD_IMAGES=1 ;;
	--print-env) PRINT_ENV=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "[bootstrap] unknown option '$1' (see scripts/bootstrap.sh --help)" >&2; exit 2 ;;
	esac
	shift
done

mkdir -p "$TOOLS_DIR"
TOOLS_DIR=$(cd "$TOOLS_DIR" && pwd)
LOG_DIR=$TOOLS_DIR/logs
mkdir -p "$LOG_DIR"

# shellcheck source=bootstrap.d/common.sh
. "$PIECES/common.sh"

# One bootstrap at a time per tools dir (README's job and .ci/run may overlap).
exec 9>"$TOOLS_DIR/.lock"
if ! flock -n 9; then
	say "another bootstrap is running on $TOOLS_DIR; waiting for it"
	flock 9
fi

case $(uname -m) in
x86_64) PLATFORM=linux_amd64 ;;
aarch64 | arm64) PLATFORM=linux_arm64 ;;
*) fail "platform check" "unsupported machine architecture $(uname -m)" ;;
esac

# shellcheck source=bootstrap.d/terraform.sh
. "$PIECES/terraform.sh"
# shellcheck source=bootstrap.d/providers.sh
. "$PIECES/providers.sh"
# shellcheck source=bootstrap.d/engine.sh
. "$PIECES/engine.sh"
# shellcheck source=bootstrap.d/test-images.sh
. "$PIECES/test-images.sh"
# shellcheck source=bootstrap.d/ssh-target.sh
. "$PIECES/ssh-target.sh"
# shellcheck source=bootstrap.d/env-file.sh
. "$PIECES/env-file.sh"

T_START=$SECONDS
IMAGE_REGISTRY_REACHABLE=0
reachable https://registry-1.docker.io/v2/ && IMAGE_REGISTRY_REACHABLE=1
((IMAGES_IF_OFFLINE && IMAGE_REGISTRY_REACHABLE)) && WANT_IMAGES=0

ensure_terraform_binary
ensure_providers
if [[ $WANT_ENGINE == 1 ]]; then
	ensure_engine
	[[ $WANT_IMAGES == 1 ]] && ensure_images
	[[ $WANT_SSH_TARGET == 1 ]] && ensure_ssh_target
fi
# Steps left out still report what is there.
if [[ $ENGINE_READY == 0 ]] && command -v docker >/dev/null && docker_answers; then
	ENGINE_READY=1
fi
if [[ $ENGINE_READY == 1 && $IMAGES_READY == 0 ]] && standins_present; then
	IMAGES_READY=1
fi
write_env_file
say "ready in $((SECONDS - T_START)) s (providers: $PROVIDER_SOURCE). Use it with: source $ENV_FILE"
if ((${#PROVIDERS_MISSING[@]})); then
	warn "missing providers: ${PROVIDERS_MISSING[*]} (NNDB_PROVIDERS_READY=0 in env.sh): terraform init/cdktf deploy cannot run here"
fi
if [[ $PRINT_ENV == 1 ]]; then
	printf '%s\n' "$ENV_FILE"
fi
