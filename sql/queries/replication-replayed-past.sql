-- On a standby: has it replayed WAL at least up to the given LSN (the primary's position once writes stopped)?
SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %(lsn)s::pg_lsn) >= 0 AS caught_up
