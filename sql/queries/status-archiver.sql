-- `nndb status`: WAL archiving where PITR is on (pg_stat_archiver, read-only). No parameters.
-- Failing = the newest failure is newer than the newest success (or nothing ever succeeded).
SELECT
    archived_count,
    failed_count,
    extract(epoch FROM last_archived_time)::bigint AS last_archived_at,
    extract(epoch FROM last_failed_time)::bigint AS last_failed_at,
    last_failed_wal
FROM pg_stat_archiver
