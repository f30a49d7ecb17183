-- End of every migration (one round trip): back to the superuser (only it may write the ledger),
-- record the migration, commit both together. {service} ... {execution_ms} are literals.
RESET ROLE;
INSERT INTO nndb.schema_migrations (service, version, description, script, checksum, execution_ms)
VALUES ({service}, {version}, {description}, {script}, {checksum}, {execution_ms});
COMMIT
