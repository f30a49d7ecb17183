-- Dashboards read the latest ticks across all symbols.
-- IF NOT EXISTS: where TimescaleDB runs, the baseline's create_hypertable already made this very
-- index (its default time index: same name, same definition); elsewhere this creates it.
-- The first text of this file had no IF NOT EXISTS and failed wherever TimescaleDB runs; ledgers
-- that applied it (plain tables) stay valid:
-- nndb: supersedes checksum 82881780829b96a5295ccaefc6aecef6ff7c6f3daa9e68ce80e9f55f27487dca
CREATE INDEX IF NOT EXISTS price_ticks_time_idx ON price_ticks (time DESC);
