-- What a node is: a primary (taking writes) or a standby (replaying WAL), and how far it is.
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text AS lsn,
       current_setting('default_transaction_read_only') = 'on' AS read_only_default
