# shellcheck shell=bash
# Piece 2 — where `terraform init` gets the providers the stacks pin, and how they are locked.
#
# The pins are the versions the prebuilt cdktf bindings were generated from (a unit test checks that
# synth requires exactly these): kreuzwerker/docker 3.6.2 (cdktf-cdktf-provider-docker 12.0.3) and
# hashicorp/external 2.3.5 (cdktf-cdktf-provider-external 11.0.1).
#
# Two sources (NNDB_PROVIDER_SOURCE=auto|registry|mirror, or --providers=...; auto = registry when
# the public registry answers, else mirror):
#   registry  Terraform's normal provider installation. Installs nothing; writes a CLI config that
#             only turns the update check off. Locking is Terraform's and cdktf's own: the first
#             `cdktf deploy`/`diff` records the registry's hashes in cdktf.out/stacks/<stack>/.terraform.lock.hcl.
#   mirror    An offline build machine. The provider binaries are placed by hand (built from the
#             providers' public source; this project ships no recipe for that) at
#               <tools>/providers/mirror/registry.terraform.io/<namespace>/<type>/<version>/<os>_<arch>/terraform-provider-<type>_v<version>
#             (registry.opentofu.org/... for tofu; this piece links one to the other). It writes a CLI
#             config whose only provider source is that mirror, checks with an offline `init` that both
#             install, and keeps the lock file that init wrote (<tools>/providers/mirror.lock.hcl,
#             named by NNDB_PROVIDER_LOCK_FILE): synth copies it into each stack directory, so cdktf
#             does not run `terraform providers lock`, which would ask the registry.
# Sets: PROVIDER_SOURCE, PROVIDERS_READY[], PROVIDERS_MISSING[], CLI_CONFIG, MIRROR_DIR, MIRROR_LOCK_FILE.

DOCKER_PROVIDER_ADDR=kreuzwerker/docker
DOCKER_PROVIDER_VERSION=3.6.2
EXTERNAL_PROVIDER_ADDR=hashicorp/external
EXTERNAL_PROVIDER_VERSION=2.3.5
PINNED_PROVIDERS=("$DOCKER_PROVIDER_ADDR@$DOCKER_PROVIDER_VERSION" "$EXTERNAL_PROVIDER_ADDR@$EXTERNAL_PROVIDER_VERSION")

MIRROR_DIR=$TOOLS_DIR/providers/mirror
CLI_CONFIG=$TOOLS_DIR/terraform.rc
MIRROR_LOCK_FILE=
PROVIDER_SOURCE=
PROVIDERS_READY=()
PROVIDERS_MISSING=()

registry_host() { [[ $TF_NAME == tofu ]] && echo registry.opentofu.org || echo registry.terraform.io; }

choose_provider_source() {
	local wanted=${PROVIDER_SOURCE_WANTED:-auto}
	case $wanted in
	registry | mirror) PROVIDER_SOURCE=$wanted ;;
	auto)
		if reachable "https://$(registry_host)/.well-known/terraform.json"; then
			PROVIDER_SOURCE=registry
		else
			PROVIDER_SOURCE=mirror
		fi
		;;
	*) fail "provider source" "NNDB_PROVIDER_SOURCE/--providers must be auto, registry or mirror, got '$wanted'" ;;
	esac
}

# mirror_paths ADDR VERSION: the binary's path under both registry hostnames.
mirror_paths() {
	local addr=$1 version=$2 type=${1#*/} host
	for host in registry.terraform.io registry.opentofu.org; do
		printf '%s\n' "$MIRROR_DIR/$host/$addr/$version/$PLATFORM/terraform-provider-${type}_v$version"
	done
}

# mirror_has ADDR VERSION: the binary is in the mirror (under either hostname; linked to the other).
mirror_has() {
	local -a paths
	mapfile -t paths < <(mirror_paths "$1" "$2")
	local found= p
	for p in "${paths[@]}"; do [[ -x $p ]] && { found=$p; break; }; done
	[[ -n $found ]] || return 1
	for p in "${paths[@]}"; do
		[[ -x $p ]] || { mkdir -p "$(dirname "$p")"; ln -f "$found" "$p" 2>/dev/null || cp "$found" "$p"; }
	done
}

write_cli_config() {
	local tmp=$CLI_CONFIG.tmp
	if [[ $PROVIDER_SOURCE == registry ]]; then
		cat >"$tmp" <<CFG
# Written by scripts/bootstrap.sh (provider source: registry). Terraform's normal provider
# installation; only the update check is off.
disable_checkpoint = true
CFG
	else
		cat >"$tmp" <<CFG
# Written by scripts/bootstrap.sh (provider source: mirror). Providers come only from this
# filesystem mirror (no registry is reachable from this machine); anything not in it fails to install.
disable_checkpoint = true

provider_installation {
  filesystem_mirror {
    path = "$MIRROR_DIR"
  }
}
CFG
	fi
	mv "$tmp" "$CLI_CONFIG"
}

# verify_mirror: an offline `init` of a tiny config needing every pinned provider; keeps its lock file.
verify_mirror() {
	((${#PROVIDERS_READY[@]})) || return 0
	local key stamp dir spec addr version
	key=$(
		printf '%s\n' "$TF_BIN" "$TF_VERSION_LINE" "${PROVIDERS_READY[@]}"
		for spec in "${PROVIDERS_READY[@]}"; do sha256sum "$(mirror_paths "${spec%@*}" "${spec#*@}" | head -n 1)"; done
	)
	key=$(printf '%s' "$key" | sha256sum | cut -c1-16)
	stamp=$TOOLS_DIR/providers/verified-$key
	MIRROR_LOCK_FILE=$TOOLS_DIR/providers/mirror.lock.hcl
	[[ -e $stamp && -s $MIRROR_LOCK_FILE ]] && return 0
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
	step_begin "checking that $TF_NAME init installs the providers from the mirror (offline)"
	run_logged "$LOG_DIR/mirror-verify.log" env TF_CLI_CONFIG_FILE="$CLI_CONFIG" TF_IN_AUTOMATION=1 \
		"$TF_BIN" -chdir="$dir" init -input=false -no-color -backend=false ||
		fail "provider mirror check" "$TF_NAME init could not install the providers from $MIRROR_DIR; see $LOG_DIR/mirror-verify.log"
	step_end
	cp "$dir/.terraform.lock.hcl" "$MIRROR_LOCK_FILE.tmp"
	mv "$MIRROR_LOCK_FILE.tmp" "$MIRROR_LOCK_FILE"
	rm -rf "$dir"
	rm -f "$TOOLS_DIR"/providers/verified-*
	: >"$stamp"
}

ensure_providers() {
	choose_provider_source
	mkdir -p "$MIRROR_DIR"
	local spec
	if [[ $PROVIDER_SOURCE == registry ]]; then
		PROVIDERS_READY=("${PINNED_PROVIDERS[@]}")
		write_cli_config
		say "providers: from the registry ($(registry_host)), Terraform's normal installation and locking"
		return 0
	fi
	for spec in "${PINNED_PROVIDERS[@]}"; do
		if mirror_has "${spec%@*}" "${spec#*@}"; then
			PROVIDERS_READY+=("$spec")
		else
			PROVIDERS_MISSING+=("$spec")
		fi
	done
	write_cli_config
	if ((${#PROVIDERS_MISSING[@]})); then
		local first=${PROVIDERS_MISSING[0]}
		local where
		where=$(mirror_paths "${first%@*}" "${first#*@}" | head -n 1)
		local hint="no registry answers, so the mirror is the only source: place the provider binary at $where (see scripts/bootstrap.d/providers.sh)"
		[[ $REQUIRE_PROVIDERS == 1 ]] && fail "provider $first" "not in the mirror; $hint"
		warn "provider(s) ${PROVIDERS_MISSING[*]} not in the mirror: synth works, init/deploy do not; $hint"
	fi
	verify_mirror
	((${#PROVIDERS_READY[@]})) && say "providers: ${PROVIDERS_READY[*]} from the mirror $MIRROR_DIR (offline; lock file $MIRROR_LOCK_FILE)"
	return 0
}
