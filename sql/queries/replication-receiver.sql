-- On a standby: whether it streams from a primary, and the WAL it has received and replayed.
SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'stopped') AS receiver_status,
       pg_last_wal_receive_lsn()::text AS received_lsn,
       pg_last_wal_replay_lsn()::text AS replayed_lsn
