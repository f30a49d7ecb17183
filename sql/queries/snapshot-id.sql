-- The id of the backup transaction's snapshot (after snapshot-export), for pg_dump --snapshot. No parameters.
SELECT pg_export_snapshot()
