#!/usr/bin/env bash
# Entrypoint of the NexaNest postgres test fixture (stands in for postgres:15; see ../README.md).
#
# Written for this project. It follows the documented contract of the official
# postgres image, not its code:
#   POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE   superuser password (required unless
#                                                POSTGRES_HOST_AUTH_METHOD=trust)
#   POSTGRES_USER (default postgres), POSTGRES_DB (default = POSTGRES_USER)
#   POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256)
#   every variable above also has a *_FILE variant (read as root before dropping privileges)
#   PGDATA (default /var/lib/postgresql/data)
#   first start: initdb, then /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz|*.sql.xz|*.sql.zst
#   in sorted order against a temporary server that listens on the unix socket only,
#   then the server runs in the foreground as user `postgres` with the arguments given.
#   A first argument starting with `-` gets `postgres` put in front of it.
#
# Deliberate difference: initdb runs with --auth-host=scram-sha-256, so TCP connections
# to 127.0.0.1/::1 inside the container need the password too (the unix socket is trust).
set -Eeo pipefail

log() { printf '%s [fixture-entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# file_env VAR [default]: VAR or the content of the file named by VAR_FILE.
file_env() {
	local var=$1 default=${2:-} file_var="${1}_FILE" value
	if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
		die "both $var and $file_var are set (they are exclusive)"
	fi
	value=$default
	if [[ -n ${!var:-} ]]; then
		value=${!var}
	elif [[ -n ${!file_var:-} ]]; then
		[[ -r ${!file_var} ]] || die "$file_var names ${!file_var}, which is missing or not readable"
		value=$(<"${!file_var}")
	fi
	export "$var=$value"
	unset "$file_var"
}

wants_help() {
	local arg
	for arg in "$@"; do
		case $arg in -'?' | --help | --describe-config | -V | --version | -C) return 0 ;; esac
	done
	return 1
}

setup_env() {
	export PGDATA=${PGDATA:-/var/lib/postgresql/data}
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	file_env POSTGRES_INITDB_WALDIR
	file_env POSTGRES_HOST_AUTH_METHOD scram-sha-256
	DATABASE_ALREADY_EXISTS=
	if [[ -s $PGDATA/PG_VERSION ]]; then DATABASE_ALREADY_EXISTS=yes; fi
}

prepare_dirs() {
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA" 2>/dev/null || true
	chmod 03775 /var/run/postgresql 2>/dev/null || true
	if [[ -n $POSTGRES_INITDB_WALDIR ]]; then mkdir -p "$POSTGRES_INITDB_WALDIR"; fi
	if [[ $(id -u) == 0 ]]; then
		find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
		chown postgres:postgres /var/run/postgresql
		if [[ -n $POSTGRES_INITDB_WALDIR ]]; then
			find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
		fi
	fi
}

run_initdb() {
	if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
		die "database is uninitialized and no superuser password is set: pass POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust, never outside tests)"
	fi
	local -a extra=() args=(
		--username="$POSTGRES_USER"
		--auth-local=trust
		--auth-host="$POSTGRES_HOST_AUTH_METHOD"
		--encoding=UTF8
		--locale=C.UTF-8
	)
	if [[ -n $POSTGRES_INITDB_WALDIR ]]; then args+=(--waldir="$POSTGRES_INITDB_WALDIR"); fi
	read -r -a extra <<<"$POSTGRES_INITDB_ARGS"
	log "running initdb for user '$POSTGRES_USER' in $PGDATA"
	if [[ -n $POSTGRES_PASSWORD ]]; then
		# The password goes through a pipe, never through the command line.
		initdb "${args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${extra[@]}"
	else
		initdb "${args[@]}" "${extra[@]}"
	fi
	printf "\n# added by the fixture entrypoint\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	printf '\n# added by the fixture entrypoint\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
}

# psql as POSTGRES_USER over the unix socket, stopping at the first error.
fixture_psql() {
	psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER" "$@"
}

temp_server_start() {
	# The server arguments given to the container (e.g. -c config_file=...) apply here too;
	# listen_addresses='' keeps the temporary server off the network.
	local opts
	opts=$(printf '%q ' "$@" -c "listen_addresses=" -p "${PGPORT:-5432}")
	pg_ctl -D "$PGDATA" -o "$opts" -w start
}

temp_server_stop() {
	pg_ctl -D "$PGDATA" -m fast -w stop
}

create_database() {
	if [[ $POSTGRES_DB == postgres ]]; then return 0; fi
	local exists
	exists=$(fixture_psql --dbname postgres -tA --set db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
	if [[ -z $exists ]]; then
		log "creating database '$POSTGRES_DB'"
		fixture_psql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
	fi
}

run_init_files() {
	local f
	shopt -s nullglob
	for f in /docker-entrypoint-initdb.d/*; do
		case $f in
		*.sh)
			if [[ -x $f ]]; then
				log "running $f"
				"$f"
			else
				log "sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql) log "running $f"; fixture_psql --dbname "$POSTGRES_DB" -f "$f" ;;
		*.sql.gz) log "running $f"; gzip -dc "$f" | fixture_psql --dbname "$POSTGRES_DB" ;;
		*.sql.xz) log "running $f"; xz -dc "$f" | fixture_psql --dbname "$POSTGRES_DB" ;;
		*.sql.zst) log "running $f"; zstd -dc "$f" | fixture_psql --dbname "$POSTGRES_DB" ;;
		*) log "ignoring $f" ;;
		esac
	done
	shopt -u nullglob
}

main() {
	if [[ ${1:-} == -* ]]; then set -- postgres "$@"; fi
	if [[ ${1:-} != postgres ]] || wants_help "$@"; then
		exec "$@"
	fi

	setup_env
	prepare_dirs
	if [[ $(id -u) == 0 ]]; then
		# Drop to the postgres user and run this script again (environment kept).
		exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
	fi

	if [[ -z $DATABASE_ALREADY_EXISTS ]]; then
		run_initdb
		export PGPASSWORD=${PGPASSWORD:-$POSTGRES_PASSWORD}
		temp_server_start "${@:2}"
		create_database
		export LC_COLLATE=C # sorted order of the init files
		run_init_files
		unset LC_COLLATE
		temp_server_stop
		unset PGPASSWORD
		log "init process complete; starting the server"
	else
		log "$PGDATA already holds a database; skipping initialization"
	fi
	exec "$@"
}

main "$@"
