-- Record one applied migration, inside the migration's own transaction.
INSERT INTO nndb.schema_migrations (service, version, description, script, checksum, execution_ms)
VALUES (%(service)s, %(version)s, %(description)s, %(script)s, %(checksum)s, %(execution_ms)s)
