#!/usr/bin/env bash
# Entrypoint of a streaming replica (docs/topology.md): the official postgres image, unchanged, with
# this script in front of its own docker-entrypoint.sh. The stack uploads it
# (nexanest_db/constructs/postgres_replica.py).
#
# On an empty data directory, clone the primary with pg_basebackup as the dedicated replication
# role, through the replica's physical replication slot (the post-apply hooks create role and slot
# before the replica container exists); -R writes standby.signal and primary_conninfo, which names
# the passfile (never the password). Then the image's entrypoint starts the server as usual: it
# finds a data directory and starts a standby. A data directory that is already there is never cloned
# again: a standby's (standby.signal) gets primary_conninfo and primary_slot_name pointed at the node
# the stack names now (after `nndb failover` promoted another node, the other standbys follow
# the new one: recovery_target_timeline = latest takes them onto its timeline); a promoted replica's
# is left as it is.
#
# Environment: NNDB_PRIMARY_HOST, NNDB_PRIMARY_PORT, NNDB_REPLICATION_USER, NNDB_REPLICATION_SLOT, and
# the password as NNDB_REPLICATION_PASSWORD_FILE (the plain password, as the stack uploads it) or
# NNDB_REPLICATION_PASSFILE (a ready pgpass line); optional NNDB_PRIMARY_SSLMODE (default prefer),
# NNDB_PRIMARY_SSLROOTCERT (the CA the primary's certificate is verified with), PGDATA.
set -Eeuo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
# The postgres user's home for pg_basebackup and the server's walreceiver alike: libpq looks for a client
# certificate under ~/.postgresql, and root's home (inherited through the image's gosu) is unreadable to postgres.
export HOME=/var/lib/postgresql
log() { printf '%s [nndb-replica] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

# The server runs as postgres and reads the passfile at every reconnect: its own 0600 copy.
passfile=/var/lib/postgresql/.nndb-replication.pgpass
if [[ -n ${NNDB_REPLICATION_PASSWORD_FILE:-} ]]; then
	# pgpass escapes \ and : in a field; printf is a builtin, so the password is on no command line.
	password=$(<"$NNDB_REPLICATION_PASSWORD_FILE")
	password=${password//\\/\\\\}
	password=${password//:/\\:}
	(
		umask 077
		printf '*:*:*:%s:%s\n' "$NNDB_REPLICATION_USER" "$password" >"$passfile.partial"
	)
	unset password
	chown postgres:postgres "$passfile.partial"
	mv -f "$passfile.partial" "$passfile"
else
	install -o postgres -g postgres -m 0600 "$NNDB_REPLICATION_PASSFILE" "$passfile"
fi

conninfo="host=$NNDB_PRIMARY_HOST port=$NNDB_PRIMARY_PORT user=$NNDB_REPLICATION_USER passfile=$passfile"
conninfo+=" sslmode=${NNDB_PRIMARY_SSLMODE:-prefer} application_name=$NNDB_REPLICATION_SLOT"
if [[ -n ${NNDB_PRIMARY_SSLROOTCERT:-} ]]; then
	conninfo+=" sslrootcert=$NNDB_PRIMARY_SSLROOTCERT"
fi

# postgresql.auto.conf's primary_conninfo and primary_slot_name, replaced (the server reads the last
# occurrence; pg_basebackup -R wrote them once, ALTER SYSTEM would need a running server).
point_standby() {
	local auto=$PGDATA/postgresql.auto.conf
	{
		grep -v -E '^[[:space:]]*(primary_conninfo|primary_slot_name)[[:space:]]*=' "$auto" || true
		printf "primary_conninfo = '%s'\n" "${conninfo//\'/\'\'}"
		printf "primary_slot_name = '%s'\n" "$NNDB_REPLICATION_SLOT"
	} >"$auto.partial"
	chown postgres:postgres "$auto.partial"
	chmod 0600 "$auto.partial"
	mv -f "$auto.partial" "$auto"
}

if [[ -s $PGDATA/PG_VERSION && -f $PGDATA/standby.signal ]]; then
	log "standby data directory: streaming from $NNDB_PRIMARY_HOST:$NNDB_PRIMARY_PORT through slot $NNDB_REPLICATION_SLOT"
	point_standby
elif [[ ! -s $PGDATA/PG_VERSION ]]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 0700 "$PGDATA"
	log "empty data directory: cloning $NNDB_PRIMARY_HOST:$NNDB_PRIMARY_PORT through slot $NNDB_REPLICATION_SLOT (sslmode ${NNDB_PRIMARY_SSLMODE:-prefer})"
	# A half-made clone (the primary went away mid-copy) must not look like a data directory next time.
	if ! setpriv --reuid=postgres --regid=postgres --init-groups -- \
		pg_basebackup -d "$conninfo" -D "$PGDATA" -R -S "$NNDB_REPLICATION_SLOT" -X stream -c fast; then
		log "pg_basebackup failed; emptying $PGDATA so the next start clones again"
		find "$PGDATA" -mindepth 1 -delete
		exit 1
	fi
	log "clone complete; starting as a standby"
fi

exec docker-entrypoint.sh "$@"
