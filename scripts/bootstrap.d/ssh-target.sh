# shellcheck shell=bash
# Piece 5 (only with --ssh-target, which `scripts/test.sh --deploy` passes) — what the ssh:// deploy
# test needs to stand in for pgdb.nn.local on this machine.
#
# Installs: Debian's openssh-server (the sshd binary only: no service is started, the test starts its
# own sshd on a free 127.0.0.1 port with its own host key and config), and a system user `deploy`
# (the user the dev/staging/prod stacks log in as, ssh://deploy@pgdb.nn.local) in the `docker` group,
# so that `ssh deploy@... docker system dial-stdio` — what the Docker provider runs — reaches the
# engine. Being in the docker group is root-equivalent on this machine: that is what the ADR's
# "SSH key-based authentication with sudo Docker access" means on pgdb.nn.local too.
# The account has no password (`*`): the test's sshd allows only its own public key.
# Sets: SSH_TARGET_READY.

SSH_TARGET_USER=deploy
SSH_TARGET_READY=0

ensure_ssh_target() {
	if [[ ! -x /usr/sbin/sshd ]]; then
		step_begin "installing Debian's openssh-server (sshd binary for the ssh:// deploy test; no service started)"
		apt_install openssh-server
		step_end
	fi
	[[ -x /usr/sbin/sshd ]] || fail "ssh target" "/usr/sbin/sshd is missing after installing openssh-server"
	getent group docker >/dev/null || fail "ssh target" "no 'docker' group (Debian's docker.io creates it); install docker.io"
	if ! id "$SSH_TARGET_USER" >/dev/null 2>&1; then
		[[ $(id -u) == 0 ]] || fail "ssh target" "creating the user '$SSH_TARGET_USER' needs root"
		useradd --system --create-home --home-dir "/var/lib/nndb-$SSH_TARGET_USER" --shell /bin/sh \
			--groups docker --comment "nexanest-db ssh deploy test user" "$SSH_TARGET_USER" ||
			fail "ssh target" "useradd $SSH_TARGET_USER failed"
		say "created system user '$SSH_TARGET_USER' (group docker) for the ssh:// deploy test"
	fi
	id -nG "$SSH_TARGET_USER" | tr ' ' '\n' | grep -qx docker ||
		fail "ssh target" "user '$SSH_TARGET_USER' exists but is not in group docker (usermod -aG docker $SSH_TARGET_USER)"
	# A locked account ('!') is refused by sshd even with a valid key; '*' means "no password".
	if [[ $(id -u) == 0 && $(getent shadow "$SSH_TARGET_USER" | cut -d: -f2) == '!'* ]]; then
		usermod -p '*' "$SSH_TARGET_USER"
	fi
	SSH_TARGET_READY=1
	say "ssh target: /usr/sbin/sshd and user '$SSH_TARGET_USER' (group docker) ready"
}
