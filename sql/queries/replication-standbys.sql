-- On a primary: each connected standby and how many bytes of WAL it has not replayed yet.
SELECT application_name,
       state,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint AS replay_lag_bytes,
       coalesce(extract(epoch FROM replay_lag), 0)::float8 AS replay_lag_s
  FROM pg_stat_replication
 ORDER BY application_name
