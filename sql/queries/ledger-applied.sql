-- The ledger rows of one service, oldest version first. Parameters: service.
SELECT version, description, script, checksum, applied_at, execution_ms, applied_by
FROM nndb.schema_migrations
WHERE service = %(service)s
ORDER BY version
