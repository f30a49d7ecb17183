-- The primary's WAL position once writes have stopped: the standby must replay up to here.
SELECT pg_current_wal_insert_lsn()::text AS lsn
