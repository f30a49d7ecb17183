#!/usr/bin/env bash
# NexaNest database tier: toolchain and Docker test-image bootstrap.
#
#   scripts/bootstrap.sh [options]        (idempotent; a warm run takes seconds)
#
# Steps, each cached by version under ${NNDB_TOOLS_DIR:-<repo>/.tools}:
#   1. a Terraform-compatible binary: `tofu` or `terraform` from PATH, else OpenTofu built
#      from the Go module proxy;
#   2. the providers the stacks use (kreuzwerker/docker 3.6.2, hashicorp/external 2.3.5),
#      built from the Go module proxy into a filesystem mirror, plus a CLI config that makes
#      that mirror the only provider source (no registry is reachable here);
#   3. a Docker engine (Debian's docker.io, started in the background) when none answers;
#   4. the test images postgres:15, timescale/timescaledb:latest-pg15 and redis:7-alpine,
#      built from tests/images/ on a Debian base made with debootstrap (never pulled);
#   5. an env file to source: <tools>/env.sh.
# Run with --help for the options.
#
# <tools>/ layout:
#   env.sh                     TF_CLI_CONFIG_FILE, TERRAFORM_BINARY_NAME, NNDB_TF_BINARY,
#                              [NNDB_TF_BIN_DIR + PATH when tofu was built], NNDB_PROVIDER_MIRROR,
#                              NNDB_PROVIDERS_{AVAILABLE,MISSING,READY}, NNDB_DOCKER_READY,
#                              NNDB_TEST_IMAGES_READY, CHECKPOINT_DISABLE
#   terraform.rc               CLI config: the filesystem mirror is the only provider source
#   tofu/<version>/tofu        OpenTofu, when built
#   providers/mirror/<host>/<namespace>/<type>/<version>/<os_arch>/terraform-provider-<type>_v<version>
#                              unpacked layout, under registry.opentofu.org and registry.terraform.io
#   images/base-<suite>-<hash>.tar   debootstrapped, trimmed rootfs (re-imported if the image is gone)
#   docker/dockerd.log, docker/dockerd.pid   the engine this script started (socket /var/run/docker.sock)
#   logs/                      output of every long step
set -euo pipefail

# ---------------------------------------------------------------- pinned versions
TOFU_MODULE=github.com/opentofu/opentofu
TOFU_VERSION=v1.12.6

DOCKER_PROVIDER_ADDR=kreuzwerker/docker
DOCKER_PROVIDER_VERSION=3.6.2
# Tag v3.6.2 of kreuzwerker/terraform-provider-docker; its go.mod names the module path below.
DOCKER_PROVIDER_SOURCES=(
	"github.com/terraform-providers/terraform-provider-docker@2f20f8c3ce8290fcd03d96e69c7bc6338897a479"
)

# cdktf-cdktf-provider-external 11.0.1 is generated from hashicorp/external 2.3.5.
EXTERNAL_PROVIDER_ADDR=hashicorp/external
EXTERNAL_PROVIDER_VERSION=2.3.5
EXTERNAL_PROVIDER_SOURCES=(
	"github.com/terraform-providers/terraform-provider-external@v2.3.5"
	"github.com/hashicorp/terraform-provider-external@v2.3.5"
)

DEBIAN_SUITE=bookworm
DOCKER_SOCKET=/var/run/docker.sock
ENGINE_WAIT_SECONDS=${NNDB_DOCKER_WAIT:-60}

IMAGE_POSTGRES=postgres:15
IMAGE_TIMESCALE=timescale/timescaledb:latest-pg15
IMAGE_REDIS=redis:7-alpine
BASE_IMAGE_REPO=nexanest-fixture/debian-base
LABEL_NS=org.nexanest.fixture

# ---------------------------------------------------------------- paths and options
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS_DIR=${NNDB_TOOLS_DIR:-$REPO_ROOT/.tools}
IMAGES_SRC=$REPO_ROOT/tests/images

usage() {
	cat <<EOF
Usage: scripts/bootstrap.sh [options]

Prepares the tools for synth/deploy and the Docker test images; caches everything in
\${NNDB_TOOLS_DIR:-<repo>/.tools} and writes <tools>/env.sh to source afterwards.

Options:
  --no-images          do not build the test images (engine and tools only)
  --no-engine          do not start a Docker engine (implies --no-images)
  --tools-only         same as --no-engine: Terraform binary, providers, CLI config, env file
  --build-tofu         build OpenTofu ${TOFU_VERSION} and use it even when tofu/terraform is
                       on PATH (same as NNDB_FORCE_TOFU_BUILD=1)
  --require-providers  fail when a provider cannot be built (default: warn, continue, and
                       record it in env.sh as NNDB_PROVIDERS_READY=0)
  --rebuild-images     rebuild the test images even when their fixture hash matches
  --print-env          print the env file's path on stdout at the end (for scripts)
  -h, --help           this help

Environment: NNDB_TOOLS_DIR (cache dir), NNDB_FORCE_TOFU_BUILD=1, NNDB_DOCKER_WAIT (seconds,
default 60), NNDB_DEBIAN_MIRROR (default: the Debian mirror apt uses), GO (go binary).
EOF
}

WANT_ENGINE=1
WANT_IMAGES=1
FORCE_TOFU=${NNDB_FORCE_TOFU_BUILD:-0}
REQUIRE_PROVIDERS=${NNDB_REQUIRE_PROVIDERS:-0}
REBUILD_IMAGES=0
PRINT_ENV=0
while (($#)); do
	case $1 in
	--no-images) WANT_IMAGES=0 ;;
	--no-engine | --tools-only) WANT_ENGINE=0 WANT_IMAGES=0 ;;
	--build-tofu) FORCE_TOFU=1 ;;
	--require-providers) REQUIRE_PROVIDERS=1 ;;
	--rebuild-images) REBUILD_IMAGES=1 ;;
	--print-env) PRINT_ENV=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "[bootstrap] unknown option '$1' (see scripts/bootstrap.sh --help)" >&2; exit 2 ;;
	esac
	shift
done

# ---------------------------------------------------------------- helpers
say() { printf '[bootstrap] %s\n' "$*" >&2; }
warn() { printf '[bootstrap] WARNING: %s\n' "$*" >&2; }
# fail STEP WHAT-TO-DO: one line, then exit 1.
fail() { printf '[bootstrap] FAILED at %s: %s\n' "$1" "$2" >&2; exit 1; }

STEP_T0=0
step_begin() { STEP_T0=$SECONDS; printf '[bootstrap] %s... ' "$*" >&2; }
step_end() { printf 'done in %d s\n' "$((SECONDS - STEP_T0))" >&2; }

# run_logged LOGFILE CMD...: output goes to LOGFILE; on failure the tail is shown.
run_logged() {
	local logfile=$1
	shift
	mkdir -p "$(dirname "$logfile")"
	local rc=0
	"$@" >"$logfile" 2>&1 || rc=$?
	((rc == 0)) && return 0
	printf '\n' >&2
	say "command failed (exit $rc): $*"
	say "last lines of $logfile:"
	tail -n 25 "$logfile" | sed 's/^/    /' >&2
	return "$rc"
}

mkdir -p "$TOOLS_DIR"
TOOLS_DIR=$(cd "$TOOLS_DIR" && pwd)
LOG_DIR=$TOOLS_DIR/logs
mkdir -p "$LOG_DIR"

# One bootstrap at a time per tools dir (README's job and .ci/run may overlap).
exec 9>"$TOOLS_DIR/.lock"
if ! flock -n 9; then
	say "another bootstrap is running on $TOOLS_DIR; waiting for it"
	flock 9
fi

ARCH=$(uname -m)
case $ARCH in
x86_64) GOARCH_=amd64 ;;
aarch64 | arm64) GOARCH_=arm64 ;;
*) fail "platform check" "unsupported machine architecture $ARCH" ;;
esac
PLATFORM=linux_$GOARCH_

APT_UPDATED=0
apt_install() {
	[[ $(id -u) == 0 ]] || fail "installing $*" "not root: install the Debian package(s) '$*' yourself, then run again"
	command -v apt-get >/dev/null || fail "installing $*" "no apt-get: install '$*' by hand, then run again"
	if [[ $APT_UPDATED == 0 ]]; then
		run_logged "$LOG_DIR/apt-get-update.log" apt-get update ||
			fail "apt-get update" "Debian's package mirror did not answer; see $LOG_DIR/apt-get-update.log"
		APT_UPDATED=1
	fi
	run_logged "$LOG_DIR/apt-get-install.log" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "$@" ||
		fail "installing $*" "apt-get install failed; see $LOG_DIR/apt-get-install.log"
}

find_go() {
	if [[ -n ${GO:-} ]]; then
		printf '%s\n' "$GO"
	elif command -v go >/dev/null; then
		command -v go
	elif [[ -x /usr/local/go/bin/go ]]; then
		printf '%s\n' /usr/local/go/bin/go
	else
		return 1
	fi
}

# go_module_dir MODULE@QUERY LOG: prints "<version> <dir>" of the downloaded module.
go_module_dir() {
	local spec=$1 log=$2 go json
	go=$(find_go) || return 1
	if ! json=$("$go" mod download -json "$spec" 2>"$log"); then
		printf '%s\n' "$json" >>"$log"
		return 1
	fi
	printf '%s\n' "$json" >>"$log"
	python3 - "$json" <<'PY'
import json, sys
info = json.loads(sys.argv[1])
if info.get("Error") or not info.get("Dir"):
    sys.exit(1)
print(info["Version"], info["Dir"])
PY
}

# go_build_module MODULE_DIR WORKDIR OUTPUT PACKAGE LOG [LDFLAGS]: copy the (read-only)
# module out of the module cache and build PACKAGE there. A copy also makes `replace`
# directives in its go.mod apply, which `go install mod@version` refuses to do.
go_build_module() {
	local src=$1 work=$2 out=$3 pkg=$4 log=$5 ldflags=${6:-} go
	go=$(find_go) || return 1
	rm -rf "$work"
	mkdir -p "$(dirname "$work")" "$(dirname "$out")"
	cp -r "$src" "$work"
	chmod -R u+w "$work"
	(
		cd "$work"
		CGO_ENABLED=0 GOFLAGS=-buildvcs=false "$go" build -trimpath -ldflags "-s -w $ldflags" \
			-o "$out.tmp" "$pkg"
	) >"$log" 2>&1 || {
		local rc=$?
		printf '\n[bootstrap] last lines of %s:\n' "$log" >&2
		tail -n 25 "$log" | sed 's/^/    /' >&2
		return "$rc"
	}
	mv "$out.tmp" "$out"
	rm -rf "$work"
}

# ---------------------------------------------------------------- 1. Terraform binary
TF_BIN=
TF_NAME=
TF_PATH_PREPEND=
TF_VERSION_LINE=
TOFU_DIR=$TOOLS_DIR/tofu/$TOFU_VERSION

build_tofu() {
	local tofu=$TOFU_DIR/tofu
	if [[ -x $tofu ]] && "$tofu" version >/dev/null 2>&1; then
		say "OpenTofu $TOFU_VERSION: cached at $tofu"
		return 0
	fi
	find_go >/dev/null || fail "OpenTofu build" "no Go toolchain found (set GO=/path/to/go or put go on PATH)"
	step_begin "downloading OpenTofu $TOFU_VERSION source from the Go module proxy"
	local out ver dir
	out=$(go_module_dir "$TOFU_MODULE@$TOFU_VERSION" "$LOG_DIR/tofu-download.log") ||
		{ printf '\n' >&2; tail -n 5 "$LOG_DIR/tofu-download.log" | sed 's/^/    /' >&2
		  fail "OpenTofu download" "the Go module proxy did not serve $TOFU_MODULE@$TOFU_VERSION; see $LOG_DIR/tofu-download.log"; }
	read -r ver dir <<<"$out"
	step_end
	step_begin "building OpenTofu $ver (first run only, ~5-10 min on 2 cores)"
	# version.dev=no: a release build ("OpenTofu v1.12.6", not "...-dev"), as upstream releases do.
	go_build_module "$dir" "$TOOLS_DIR/build/opentofu-$ver" "$tofu" ./cmd/tofu "$LOG_DIR/tofu-build.log" \
		"-X github.com/opentofu/opentofu/version.dev=no" ||
		fail "OpenTofu build" "go build ./cmd/tofu failed; see $LOG_DIR/tofu-build.log"
	step_end
	"$tofu" version >/dev/null 2>&1 || fail "OpenTofu build" "the built $tofu does not run; see $LOG_DIR/tofu-build.log"
}

pick_tf_binary() {
	if [[ $FORCE_TOFU == 1 ]]; then
		build_tofu
		TF_BIN=$TOFU_DIR/tofu TF_NAME=tofu TF_PATH_PREPEND=$TOFU_DIR
	elif command -v tofu >/dev/null; then
		TF_BIN=$(command -v tofu) TF_NAME=tofu
	elif command -v terraform >/dev/null; then
		TF_BIN=$(command -v terraform) TF_NAME=terraform
	else
		build_tofu
		TF_BIN=$TOFU_DIR/tofu TF_NAME=tofu TF_PATH_PREPEND=$TOFU_DIR
	fi
	local v
	# Whole output first: `| head -n 1` could end the binary with SIGPIPE under pipefail.
	v=$(TF_CLI_CONFIG_FILE=/dev/null CHECKPOINT_DISABLE=1 "$TF_BIN" version 2>/dev/null) ||
		fail "Terraform binary check" "$TF_BIN does not run ('$TF_BIN version' failed)"
	v=${v%%$'\n'*}
	TF_VERSION_LINE=$v
	say "Terraform-compatible binary: $TF_BIN ($v)"
}

# ---------------------------------------------------------------- 2. providers + CLI config
MIRROR_DIR=$TOOLS_DIR/providers/mirror
CLI_CONFIG=$TOOLS_DIR/terraform.rc
PROVIDERS_READY=()
PROVIDERS_MISSING=()

# mirror_paths ADDR VERSION: the binary's path under both registry hostnames.
mirror_paths() {
	local addr=$1 version=$2 type=${1#*/} host
	for host in registry.opentofu.org registry.terraform.io; do
		printf '%s\n' "$MIRROR_DIR/$host/$addr/$version/$PLATFORM/terraform-provider-${type}_v$version"
	done
}

# provide ADDR VERSION SOURCES...: build a provider into the mirror unless it is there.
provide() {
	local addr=$1 version=$2
	shift 2
	local -a paths
	mapfile -t paths < <(mirror_paths "$addr" "$version")
	local primary=${paths[0]} p
	if [[ -x $primary ]]; then
		for p in "${paths[@]:1}"; do
			[[ -x $p ]] || { mkdir -p "$(dirname "$p")"; ln -f "$primary" "$p" 2>/dev/null || cp "$primary" "$p"; }
		done
		say "provider $addr $version: cached in the mirror"
		PROVIDERS_READY+=("$addr@$version")
		return 0
	fi
	local slug=${addr//\//-} spec out ver dir log=$LOG_DIR/provider-${addr//\//-}-$version-download.log
	: >"$log"
	find_go >/dev/null || echo "error: no Go toolchain found (set GO=/path/to/go or put go on PATH)" >"$log"
	for spec in "$@"; do
		if out=$(go_module_dir "$spec" "$log"); then
			read -r ver dir <<<"$out"
			step_begin "building provider $addr $version from $spec -> $ver (first run only, ~2-4 min)"
			go_build_module "$dir" "$TOOLS_DIR/build/provider-$slug-$version" "$primary" . \
				"$LOG_DIR/provider-$slug-$version-build.log" "-X main.version=$version" ||
				fail "provider $addr build" "go build failed; see $LOG_DIR/provider-$slug-$version-build.log"
			step_end
			for p in "${paths[@]:1}"; do
				mkdir -p "$(dirname "$p")"
				ln -f "$primary" "$p" 2>/dev/null || cp "$primary" "$p"
			done
			PROVIDERS_READY+=("$addr@$version")
			return 0
		fi
	done
	local why
	why=$(grep -m1 -o 'server response: [^"\]*' "$log" || grep -m1 -i 'error' "$log" || echo "see $log")
	PROVIDERS_MISSING+=("$addr@$version")
	if [[ $REQUIRE_PROVIDERS == 1 ]]; then
		fail "provider $addr $version" "the Go module proxy did not serve its source (tried: $*; $why); see $log"
	fi
	warn "provider $addr $version: the Go module proxy did not serve its source (tried: $*; $why). Synth works; init/deploy of stacks that use it will not. Details: $log"
}

write_cli_config() {
	local tmp=$CLI_CONFIG.tmp
	cat >"$tmp" <<EOF
# Written by scripts/bootstrap.sh. Providers come only from the local filesystem mirror
# (no registry is reachable from this machine); anything not in it fails to install.
disable_checkpoint = true

provider_installation {
  filesystem_mirror {
    path = "$MIRROR_DIR"
  }
}
EOF
	mv "$tmp" "$CLI_CONFIG"
}

# verify_mirror: `init` of a tiny config needing every mirrored provider, offline.
verify_mirror() {
	((${#PROVIDERS_READY[@]})) || return 0
	local key stamp dir spec addr version
	key=$(printf '%s\n' "$TF_BIN" "$TF_VERSION_LINE" "${PROVIDERS_READY[@]}" | sha256sum | cut -c1-16)
	stamp=$TOOLS_DIR/providers/verified-$key
	[[ -e $stamp ]] && return 0
	dir=$TOOLS_DIR/providers/verify
	rm -rf "$dir"
	mkdir -p "$dir"
	{
		printf 'terraform {\n  required_providers {\n'
		for spec in "${PROVIDERS_READY[@]}"; do
			addr=${spec%@*} version=${spec#*@}
			printf '    %s = {\n      source  = "%s"\n      version = "%s"\n    }\n' "${addr#*/}" "$addr" "$version"
		done
		printf '  }\n}\n'
	} >"$dir/main.tf"
	step_begin "checking that $TF_NAME init finds the providers in the mirror (offline)"
	run_logged "$LOG_DIR/mirror-verify.log" env TF_CLI_CONFIG_FILE="$CLI_CONFIG" TF_IN_AUTOMATION=1 \
		"$TF_BIN" -chdir="$dir" init -input=false -no-color -backend=false ||
		fail "provider mirror check" "$TF_NAME init could not install the providers from $MIRROR_DIR; see $LOG_DIR/mirror-verify.log"
	step_end
	rm -rf "$dir"
	rm -f "$TOOLS_DIR"/providers/verified-*
	: >"$stamp"
}

# ---------------------------------------------------------------- 3. Docker engine
DOCKER_DIR=$TOOLS_DIR/docker
ENGINE_READY=0

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

# An engine that was killed (a CI run starts after the session's processes are ended) leaves its
# pid files behind, and dockerd refuses to start over them. Remove only those whose process is gone.
clear_stale_engine_files() {
	local pidfile pid
	for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
		[[ -f $pidfile ]] || continue
		pid=$(cat "$pidfile" 2>/dev/null || true)
		if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
			say "removing stale $pidfile (process ${pid:-?} is gone)"
			rm -f "$pidfile"
		fi
	done
}

ensure_engine() {
	command -v docker >/dev/null || apt_install docker.io
	if docker_answers; then
		say "Docker engine: answering ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
		ENGINE_READY=1
		return 0
	fi
	if [[ -n ${DOCKER_HOST:-} && ${DOCKER_HOST} != "unix://$DOCKER_SOCKET" ]]; then
		fail "Docker engine" "DOCKER_HOST=$DOCKER_HOST does not answer; unset it to use a local engine or start that engine"
	fi
	[[ $(id -u) == 0 ]] || fail "Docker engine" "no engine answers and starting dockerd needs root; start it (e.g. sudo dockerd) and run again"
	if ! command -v dockerd >/dev/null; then
		step_begin "installing Debian's docker.io (first run only, ~20 s)"
		apt_install docker.io
		step_end
	fi
	mkdir -p "$DOCKER_DIR"
	clear_stale_engine_files
	step_begin "starting dockerd (log: $DOCKER_DIR/dockerd.log)"
	# setsid: the engine outlives this script and the shell job that ran it.
	setsid dockerd --host="unix://$DOCKER_SOCKET" >>"$DOCKER_DIR/dockerd.log" 2>&1 </dev/null 9>&- &
	echo $! >"$DOCKER_DIR/dockerd.pid"
	local deadline=$((SECONDS + ENGINE_WAIT_SECONDS))
	until docker_answers; do
		if ((SECONDS >= deadline)) || ! kill -0 "$(cat "$DOCKER_DIR/dockerd.pid")" 2>/dev/null; then
			printf '\n' >&2
			tail -n 15 "$DOCKER_DIR/dockerd.log" | sed 's/^/    /' >&2
			fail "Docker engine" "dockerd did not answer on $DOCKER_SOCKET within ${ENGINE_WAIT_SECONDS} s; see $DOCKER_DIR/dockerd.log"
		fi
		sleep 1
	done
	step_end
	ENGINE_READY=1
}

# ---------------------------------------------------------------- 4. test images
IMAGES_DIR=$TOOLS_DIR/images
IMAGES_READY=0

debian_mirror() {
	if [[ -n ${NNDB_DEBIAN_MIRROR:-} ]]; then
		printf '%s\n' "$NNDB_DEBIAN_MIRROR"
		return 0
	fi
	local f uri
	# deb822 sources first, then one-line sources; the first mirror serving the suite wins.
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		uri=$(awk -v suite="$DEBIAN_SUITE" '
			function check() { if (!found && u != "" && s ~ ("(^| )" suite "( |$)")) { print u; found = 1 } u = ""; s = "" }
			/^[[:space:]]*$/ { check(); next }
			tolower($1) == "uris:" { u = $2 }
			tolower($1) == "suites:" { $1 = ""; s = $0 " " }
			END { check() }' "$f" || true)
		[[ -n $uri ]] && { printf '%s\n' "$uri"; return 0; }
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		uri=$(awk -v suite="$DEBIAN_SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == suite) { print $i; exit } }' "$f" || true)
		[[ -n $uri ]] && { printf '%s\n' "$uri"; return 0; }
	done
	printf '%s\n' http://deb.debian.org/debian
}

base_packages() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$IMAGES_SRC/base/packages.txt" | tr -d ' \t' | paste -sd, -; }

# Hash of everything an image is made from: the base recipe plus every file in tests/images.
fixture_hash() {
	(
		cd "$IMAGES_SRC"
		printf 'suite=%s\n' "$DEBIAN_SUITE"
		find . -type f ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
	) | sha256sum | cut -c1-16
}

base_hash() {
	(
		printf 'suite=%s\n' "$DEBIAN_SUITE"
		sha256sum "$IMAGES_SRC/base/packages.txt" "$IMAGES_SRC/base/cleanup-rootfs.sh" | cut -d' ' -f1
	) | sha256sum | cut -c1-16
}

image_label() { docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

# Unmount anything left mounted below DIR (a failed debootstrap leaves /proc etc.), then delete it.
remove_rootfs() {
	local dir=$1 m
	[[ -d $dir ]] || return 0
	while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
	rm -rf --one-file-system "$dir"
}

ensure_base_image() {
	local bhash=$1 tag=$BASE_IMAGE_REPO:$DEBIAN_SUITE-$1
	BASE_TAG=$tag
	if docker image inspect "$tag" >/dev/null 2>&1; then
		return 0
	fi
	local tarball=$IMAGES_DIR/base-$DEBIAN_SUITE-$bhash.tar
	if [[ ! -s $tarball ]]; then
		[[ $(id -u) == 0 ]] || fail "base rootfs" "debootstrap needs root"
		command -v debootstrap >/dev/null || {
			step_begin "installing debootstrap (first run only)"
			apt_install debootstrap
			step_end
		}
		local mirror rootfs=$IMAGES_DIR/rootfs.tmp
		mirror=$(debian_mirror)
		remove_rootfs "$rootfs"
		step_begin "debootstrap $DEBIAN_SUITE minbase + $(base_packages) from $mirror (first run only, ~40-80 s)"
		run_logged "$LOG_DIR/debootstrap.log" debootstrap --variant=minbase --include="$(base_packages)" \
			"$DEBIAN_SUITE" "$rootfs" "$mirror" || {
			remove_rootfs "$rootfs"
			fail "debootstrap" "could not build the base rootfs from $mirror (set NNDB_DEBIAN_MIRROR to another mirror?); see $LOG_DIR/debootstrap.log"
		}
		bash "$IMAGES_SRC/base/cleanup-rootfs.sh" "$rootfs" >>"$LOG_DIR/debootstrap.log" 2>&1 ||
			fail "base rootfs cleanup" "see $LOG_DIR/debootstrap.log"
		tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.tmp" . ||
			fail "base rootfs tarball" "tar of $rootfs failed (disk full?)"
		mv "$tarball.tmp" "$tarball"
		remove_rootfs "$rootfs"
		rm -f "$IMAGES_DIR"/base-*.tar.tmp
		step_end
	fi
	step_begin "importing the base rootfs as $tag"
	run_logged "$LOG_DIR/docker-import.log" docker import \
		--change "LABEL $LABEL_NS.base-hash=\"$bhash\"" \
		--change "LABEL $LABEL_NS.note=\"NexaNest test fixture base (Debian $DEBIAN_SUITE), not an official image\"" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' \
		"$tarball" "$tag" ||
		fail "docker import" "importing $tarball failed; see $LOG_DIR/docker-import.log"
	step_end
	# Older base tarballs of other recipes are dead weight.
	find "$IMAGES_DIR" -maxdepth 1 -name "base-*.tar" ! -name "base-$DEBIAN_SUITE-$bhash.tar" -delete
}

# build_image TAG CONTEXT_DIR STANDS_IN_FOR FIXTURE_HASH BUILD_ARG...
build_image() {
	local tag=$1 ctx=$2 stands_in=$3 fhash=$4
	shift 4
	local -a args=()
	local a
	for a in "$@"; do args+=(--build-arg "$a"); done
	local log=$LOG_DIR/docker-build-${tag//[\/:]/_}.log
	step_begin "building test image $tag"
	run_logged "$log" env DOCKER_BUILDKIT=0 docker build --pull=false --force-rm \
		--label "$LABEL_NS=true" \
		--label "$LABEL_NS.hash=$fhash" \
		--label "$LABEL_NS.stands-in-for=$stands_in" \
		--label "$LABEL_NS.source=tests/images/$(basename "$ctx")" \
		"${args[@]}" -t "$tag" "$ctx" ||
		fail "docker build $tag" "see $log"
	step_end
}

images_current() {
	[[ $(image_label "$IMAGE_POSTGRES" "$LABEL_NS.hash") == "$1" ]] &&
		[[ $(image_label "$IMAGE_TIMESCALE" "$LABEL_NS.hash") == "$1" ]] &&
		[[ $(image_label "$IMAGE_REDIS" "$LABEL_NS.hash") == "$1" ]]
}

ensure_images() {
	local fhash bhash
	fhash=$(fixture_hash)
	bhash=$(base_hash)
	if [[ $REBUILD_IMAGES == 0 ]] && images_current "$fhash"; then
		say "test images: $IMAGE_POSTGRES, $IMAGE_TIMESCALE, $IMAGE_REDIS up to date (fixture hash $fhash)"
		IMAGES_READY=1
		return 0
	fi
	mkdir -p "$IMAGES_DIR"
	ensure_base_image "$bhash"
	build_image "$IMAGE_POSTGRES" "$IMAGES_SRC/postgres" "postgres:15 (official image)" "$fhash" "BASE_IMAGE=$BASE_TAG"
	build_image "$IMAGE_TIMESCALE" "$IMAGES_SRC/timescaledb" "timescale/timescaledb:latest-pg15 (official image)" "$fhash" "PG_IMAGE=$IMAGE_POSTGRES"
	build_image "$IMAGE_REDIS" "$IMAGES_SRC/redis" "redis:7-alpine (official image)" "$fhash" "BASE_IMAGE=$BASE_TAG"
	# Keep only the current base image; dangling layers of earlier fixture builds go too.
	local old
	for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' "$BASE_IMAGE_REPO" 2>/dev/null); do
		[[ $old == "$BASE_TAG" ]] || docker image rm "$old" >/dev/null 2>&1 || true
	done
	# (a few passes: an old timescale image keeps its old postgres parent from being dangling)
	local _
	for _ in 1 2 3; do
		docker image prune -f --filter "label=$LABEL_NS=true" >/dev/null 2>&1 || true
	done
	IMAGES_READY=1
}

# ---------------------------------------------------------------- 5. env file
ENV_FILE=$TOOLS_DIR/env.sh

# shq VALUE: VALUE in single quotes, readable by `source` and by dotenv-style parsers.
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

write_env_file() {
	local tmp=$ENV_FILE.tmp q
	{
		printf '# Written by scripts/bootstrap.sh; source it: . %s\n' "$ENV_FILE"
		printf 'export NNDB_TOOLS_DIR=%s\n' "$(shq "$TOOLS_DIR")"
		printf 'export TF_CLI_CONFIG_FILE=%s\n' "$(shq "$CLI_CONFIG")"
		printf 'export TERRAFORM_BINARY_NAME=%s\n' "$(shq "$TF_NAME")"
		printf 'export NNDB_TF_BINARY=%s\n' "$(shq "$TF_BIN")"
		if [[ -n $TF_PATH_PREPEND ]]; then
			printf 'export NNDB_TF_BIN_DIR=%s\n' "$(shq "$TF_PATH_PREPEND")"
			# shellcheck disable=SC2016 # written for the shell that sources the file
			printf 'case ":$PATH:" in *":$NNDB_TF_BIN_DIR:"*) ;; *) export PATH="$NNDB_TF_BIN_DIR:$PATH" ;; esac\n'
		fi
		printf 'export NNDB_PROVIDER_MIRROR=%s\n' "$(shq "$MIRROR_DIR")"
		q=
		((${#PROVIDERS_READY[@]})) && q=${PROVIDERS_READY[*]}
		printf 'export NNDB_PROVIDERS_AVAILABLE=%s\n' "$(shq "$q")"
		q=
		((${#PROVIDERS_MISSING[@]})) && q=${PROVIDERS_MISSING[*]}
		printf 'export NNDB_PROVIDERS_MISSING=%s\n' "$(shq "$q")"
		printf 'export NNDB_PROVIDERS_READY=%d\n' "$(( ${#PROVIDERS_MISSING[@]} == 0 ? 1 : 0 ))"
		printf 'export NNDB_DOCKER_READY=%d\n' "$ENGINE_READY"
		printf 'export NNDB_TEST_IMAGES_READY=%d\n' "$IMAGES_READY"
		printf 'export CHECKPOINT_DISABLE=1\n'
	} >"$tmp"
	mv "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- main
T_START=$SECONDS
pick_tf_binary
mkdir -p "$MIRROR_DIR"
provide "$DOCKER_PROVIDER_ADDR" "$DOCKER_PROVIDER_VERSION" "${DOCKER_PROVIDER_SOURCES[@]}"
provide "$EXTERNAL_PROVIDER_ADDR" "$EXTERNAL_PROVIDER_VERSION" "${EXTERNAL_PROVIDER_SOURCES[@]}"
write_cli_config
verify_mirror
if [[ $WANT_ENGINE == 1 ]]; then
	ensure_engine
	if [[ $WANT_IMAGES == 1 ]]; then
		ensure_images
	fi
fi
# Steps left out still report what is there, so env.sh tells the truth either way.
if [[ $ENGINE_READY == 0 ]] && command -v docker >/dev/null && docker_answers; then
	ENGINE_READY=1
fi
if [[ $ENGINE_READY == 1 && $IMAGES_READY == 0 ]] && images_current "$(fixture_hash)"; then
	IMAGES_READY=1
fi
write_env_file
say "ready in $((SECONDS - T_START)) s. Use it with: source $ENV_FILE"
if ((${#PROVIDERS_MISSING[@]})); then
	warn "missing providers: ${PROVIDERS_MISSING[*]} (NNDB_PROVIDERS_READY=0 in env.sh): terraform init/cdktf deploy cannot run here"
fi
if [[ $PRINT_ENV == 1 ]]; then
	printf '%s\n' "$ENV_FILE"
fi
