# shellcheck shell=bash
# Helpers every bootstrap piece uses: one-line messages, logged long steps, Debian packages.
# Installs nothing by itself. Sourced by scripts/bootstrap.sh after TOOLS_DIR and LOG_DIR are set.

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

APT_UPDATED=0
# apt_install PACKAGE...: Debian packages, non-interactive, without starting any service they ship
# (a temporary policy-rc.d, Debian's documented switch, unless the machine already has one).
apt_install() {
	[[ $(id -u) == 0 ]] || fail "installing $*" "not root: install the Debian package(s) '$*' yourself, then run again"
	command -v apt-get >/dev/null || fail "installing $*" "no apt-get: install '$*' by hand, then run again"
	if [[ $APT_UPDATED == 0 ]]; then
		run_logged "$LOG_DIR/apt-get-update.log" apt-get -o DPkg::Lock::Timeout=600 update ||
			fail "apt-get update" "Debian's package mirror did not answer; see $LOG_DIR/apt-get-update.log"
		APT_UPDATED=1
	fi
	local policy=/usr/sbin/policy-rc.d ours=0 rc=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\n# written by nexanest-db scripts/bootstrap.sh for one apt-get run\nexit 101\n' >"$policy"
		chmod 0755 "$policy"
		ours=1
	fi
	run_logged "$LOG_DIR/apt-get-install.log" env DEBIAN_FRONTEND=noninteractive \
		apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@" || rc=$?
	((ours)) && rm -f "$policy"
	((rc == 0)) || fail "installing $*" "apt-get install failed; see $LOG_DIR/apt-get-install.log"
}

# reachable URL: whether an HTTPS endpoint answers at all within 5 s (any HTTP status counts).
reachable() {
	local url=$1
	if command -v curl >/dev/null; then
		curl -s -o /dev/null --max-time 5 "$url"
		return
	fi
	python3 - "$url" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5)
except urllib.error.HTTPError:
    pass
except Exception:
    sys.exit(1)
PY
}
