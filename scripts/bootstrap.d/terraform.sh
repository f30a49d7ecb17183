# shellcheck shell=bash
# Piece 1 — the Terraform-compatible binary that cdktf-cli drives (TERRAFORM_BINARY_NAME).
#
# Installs: nothing when `tofu` or `terraform` is on PATH (that one is used). Otherwise OpenTofu
# (${TOFU_VERSION}), built from its source as the Go module proxy serves it, into
# <tools>/tofu/<version>/tofu. Why: cdktf needs one of the two and Debian packages neither; the Go
# toolchain and its module proxy are what these machines have.
# Sets: TF_BIN, TF_NAME, TF_PATH_PREPEND, TF_VERSION_LINE.

TOFU_MODULE=github.com/opentofu/opentofu
TOFU_VERSION=v1.12.6

TF_BIN=
TF_NAME=
TF_PATH_PREPEND=
TF_VERSION_LINE=
TOFU_DIR=$TOOLS_DIR/tofu/$TOFU_VERSION

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

# go_build_module MODULE_DIR WORKDIR OUTPUT PACKAGE LOG [LDFLAGS]: copy the (read-only) module out of
# the module cache and build PACKAGE there (a copy also makes `replace` directives in its go.mod apply).
go_build_module() {
	local src=$1 work=$2 out=$3 pkg=$4 log=$5 ldflags=${6:-} go
	go=$(find_go) || return 1
	rm -rf "$work"
	mkdir -p "$(dirname "$work")" "$(dirname "$out")"
	cp -r "$src" "$work"
	chmod -R u+w "$work"
	(
		cd "$work"
		CGO_ENABLED=0 GOFLAGS=-buildvcs=false "$go" build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg"
	) >"$log" 2>&1 || {
		local rc=$?
		printf '\n[bootstrap] last lines of %s:\n' "$log" >&2
		tail -n 25 "$log" | sed 's/^/    /' >&2
		return "$rc"
	}
	mv "$out.tmp" "$out"
	rm -rf "$work"
}

build_tofu() {
	local tofu=$TOFU_DIR/tofu
	if [[ -x $tofu ]] && "$tofu" version >/dev/null 2>&1; then
		say "OpenTofu $TOFU_VERSION: cached at $tofu"
		return 0
	fi
	find_go >/dev/null || fail "OpenTofu build" "no tofu/terraform on PATH and no Go toolchain (set GO=/path/to/go, or install terraform)"
	step_begin "downloading OpenTofu $TOFU_VERSION source from the Go module proxy"
	local out ver dir
	out=$(go_module_dir "$TOFU_MODULE@$TOFU_VERSION" "$LOG_DIR/tofu-download.log") || {
		printf '\n' >&2
		tail -n 5 "$LOG_DIR/tofu-download.log" | sed 's/^/    /' >&2
		fail "OpenTofu download" "the Go module proxy did not serve $TOFU_MODULE@$TOFU_VERSION; see $LOG_DIR/tofu-download.log"
	}
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

ensure_terraform_binary() {
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
