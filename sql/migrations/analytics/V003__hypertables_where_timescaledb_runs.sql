-- price_ticks and portfolio_snapshots become hypertables wherever TimescaleDB runs, also where the
-- baseline ran while the extension was missing (e.g. a local-db created before config/local.toml
-- preloaded timescaledb): their rows move into chunks. Where they already are hypertables this does
-- nothing; where the extension is missing they stay plain tables, said in one line.
-- price_ticks keeps its time index from V001, so TimescaleDB creates no second one.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('price_ticks', 'time', if_not_exists => TRUE, migrate_data => TRUE);
        PERFORM create_hypertable('portfolio_snapshots', 'time', if_not_exists => TRUE, migrate_data => TRUE);
    ELSE
        RAISE NOTICE 'timescaledb extension not available: price_ticks and portfolio_snapshots stay plain tables';
    END IF;
END
$$;
