-- In the scratch database a backup is restored into, before pg_restore: where the instance runs
-- TimescaleDB, the extension first and timescaledb_pre_restore() (TimescaleDB's documented restore
-- procedure: its catalog and chunks arrive as plain data, its background workers stay off).
DO $$
BEGIN
    IF current_setting('shared_preload_libraries') LIKE '%timescaledb%'
       AND EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        PERFORM timescaledb_pre_restore();
    END IF;
END
$$
