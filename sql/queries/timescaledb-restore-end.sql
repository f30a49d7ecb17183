-- After pg_restore into the scratch database: timescaledb_post_restore() where TimescaleDB is there
-- (its restoring mode off again, before the row counts are compared).
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM timescaledb_post_restore();
    END IF;
END
$$
