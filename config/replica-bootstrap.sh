#!/usr/bin/env bash
# Entrypoint of a streaming replica (docs/topology.md): the official postgres image, unchanged, with
# this script in front of its own docker-entrypoint.sh.
#
# On an empty data directory, clone the primary with pg_basebackup as the dedicated replication
# role, through the instance's physical replication slot; -R writes standby.signal and
# primary_conninfo, which names the passfile (never the password). Then the image's entrypoint
# starts the server as usual: it finds a data directory and starts a standby.
#
# Environment: NNDB_PRIMARY_HOST, NNDB_PRIMARY_PORT, NNDB_REPLICATION_USER, NNDB_REPLICATION_SLOT,
# NNDB_REPLICATION_PASSFILE (an uploaded pgpass line), optional NNDB_PRIMARY_SSLMODE, PGDATA.
set -Eeuo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
log() { printf '%s [nndb-replica] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

# The server runs as postgres and reads the passfile at every reconnect: its own 0600 copy.
passfile=/var/lib/postgresql/.nndb-replication.pgpass
install -o postgres -g postgres -m 0600 "$NNDB_REPLICATION_PASSFILE" "$passfile"

if [[ ! -s $PGDATA/PG_VERSION ]]; then
	mkdir -p "$PGDATA"
	chown postgres:postgres "$PGDATA"
	chmod 0700 "$PGDATA"
	conninfo="host=$NNDB_PRIMARY_HOST port=$NNDB_PRIMARY_PORT user=$NNDB_REPLICATION_USER passfile=$passfile"
	conninfo+=" sslmode=${NNDB_PRIMARY_SSLMODE:-prefer} application_name=$NNDB_REPLICATION_SLOT"
	log "empty data directory: cloning $NNDB_PRIMARY_HOST:$NNDB_PRIMARY_PORT through slot $NNDB_REPLICATION_SLOT"
	setpriv --reuid=postgres --regid=postgres --init-groups -- \
		pg_basebackup -d "$conninfo" -D "$PGDATA" -R -S "$NNDB_REPLICATION_SLOT" -X stream -c fast
	log "clone complete; starting as a standby"
fi

exec docker-entrypoint.sh "$@"
