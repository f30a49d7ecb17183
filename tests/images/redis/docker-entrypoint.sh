#!/usr/bin/env bash
# Entrypoint of the NexaNest redis test fixture (stands in for redis:7-alpine; see ../README.md).
#
# Written for this project; it follows the documented behaviour of the official redis
# image, not its code:
#   - a first argument that starts with `-` or ends in `.conf` gets `redis-server` in front;
#   - redis-server runs as user `redis`, after the files in the working dir /data that
#     belong to someone else are given to that user;
#   - the official server is built with protected mode off by default; here that default
#     is emulated with `--protected-mode no` unless the arguments or the config file given
#     set protected-mode themselves;
#   - the umask becomes 0077 when it is still the default 0022.
set -Eeo pipefail

protected_mode_set() {
	local arg
	for arg in "$@"; do
		[[ $arg == --protected-mode ]] && return 0
	done
	# The config file, when one is given, is the first argument after redis-server.
	if [[ -n ${2:-} && ${2} != -* && -r ${2} ]] && grep -Eqi '^[[:space:]]*protected-mode[[:space:]]' "$2"; then
		return 0
	fi
	return 1
}

if [[ ${1:-} == -* || ${1:-} == *.conf ]]; then
	set -- redis-server "$@"
fi

if [[ ${1:-} == redis-server ]]; then
	if ! protected_mode_set "$@"; then
		set -- "$@" --protected-mode no
	fi
	if [[ $(id -u) == 0 ]]; then
		find . \! -user redis -exec chown redis '{}' +
		exec setpriv --reuid=redis --regid=redis --init-groups -- "${BASH_SOURCE[0]}" "$@"
	fi
	if [[ $(umask) == 0022 ]]; then
		umask 0077
	fi
fi

exec "$@"
