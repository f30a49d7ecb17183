-- End of every migration (one round trip), in the migrator's session: back to the migrator itself
-- (a migration may have left any role set), the ledger row through nndb.record_migration with this
-- run token (sql/ledger/01-create-ledger.sql), both committed together. The placeholders are literals.
RESET ROLE;
SELECT nndb.record_migration({token}, {service}, {version}, {description}, {script}, {checksum}, {execution_ms});
COMMIT
