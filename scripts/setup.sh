#!/usr/bin/env bash
# Install what the project needs on a fresh Debian 12 machine: system packages, the Python
# virtualenv (.venv) with pinned packages, and the pinned cdktf-cli (node_modules).
# Idempotent: a second run only checks. Usage: scripts/setup.sh [--with-test-servers]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

want_test_servers=0
for arg in "$@"; do
  case "$arg" in
    --with-test-servers) want_test_servers=1 ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) die "unknown option $arg (see --help)" ;;
  esac
done

# PostgreSQL 15 client tools (pg_dump/pg_restore for backups) are always needed; the servers
# (PostgreSQL 15, Redis 7) only for the test suite, which starts its own on free ports.
packages=(postgresql-client-15)
# Redis backups (docs/backups.md#redis): redis-cli --rdb takes them, redis-check-rdb proves them, and the same binary
# as a scratch redis-server loads one for a restore.
packages+=(redis-tools)
[[ $want_test_servers == 1 ]] && packages+=(postgresql-15 redis-server prometheus prometheus-postgres-exporter prometheus-redis-exporter prometheus-node-exporter)
# The off-host backup repository (docs/backups.md#repository) is reached over ssh; the tests stand up a
# second "backup host" with Debian's sshd (started by the fixture, no service) as the user nndb-backup.
packages+=(openssh-client)
[[ $want_test_servers == 1 ]] && packages+=(openssh-server)
# Point-in-time recovery (docs/backups.md): barman on the machine that keeps the repository; pinned to Debian 12's.
packages+=(barman)
declare -A pins=([barman]=3.4.0-1)
missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || { [[ -n ${pins[$pkg]:-} ]] && [[ $(dpkg-query -W -f='${Version}' "$pkg") != "${pins[$pkg]}" ]]; }; then
    missing+=("$pkg${pins[$pkg]:+=${pins[$pkg]}}")
  fi
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them with your package manager"
  log "installing Debian packages: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
fi

if [[ $want_test_servers == 1 ]] && ! id nndb-backup >/dev/null 2>&1; then
  [[ $(id -u) == 0 ]] || die "creating the test backup-host user nndb-backup needs root"
  # Owns the test repository (mode 0700): the tests write to it only through ssh as this user.
  useradd --system --create-home --home-dir /var/lib/nndb-backup --shell /bin/sh --comment "nexanest-db backup repository test user" nndb-backup \
    || die "useradd nndb-backup failed"
  usermod -p '*' nndb-backup # '*': no password, but not locked ('!'), which sshd refuses even with a valid key
  log "created system user nndb-backup (the test backup host's repository owner)"
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || die "Python 3.11 is required (found $("$python" --version 2>&1))"
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$python" -m venv .venv
fi
stamp=.venv/.nndb-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp || constraints.txt -nt $stamp ]]; then
  log "installing Python packages (pinned: pyproject.toml + constraints.txt)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,dev]' || die "pip install failed (see above)"
  touch "$stamp"
fi

if [[ ! -x node_modules/.bin/cdktf || package-lock.json -nt node_modules/.package-lock.json ]]; then
  command -v npm >/dev/null || die "npm is required for cdktf-cli (install Node.js 20+)"
  log "installing cdktf-cli (package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null || die "npm ci failed"
fi
# `. .venv/bin/activate` then gives the pinned cdktf too (README "Daily use"): a link, not a copy, so
# it always runs this checkout's node_modules.
ln -sfn ../../node_modules/.bin/cdktf .venv/bin/cdktf
log "ready: .venv (nndb $(.venv/bin/nndb --help >/dev/null 2>&1 && echo ok || echo BROKEN)), cdktf-cli $(node_modules/.bin/cdktf --version 2>/dev/null | head -1)"
