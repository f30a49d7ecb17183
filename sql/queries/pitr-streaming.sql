-- How many sessions of the replication role stream WAL from this server. Parameters: role.
SELECT count(*) FROM pg_stat_replication WHERE usename = %(role)s AND state = 'streaming'
