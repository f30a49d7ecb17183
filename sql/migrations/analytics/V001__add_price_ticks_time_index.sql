-- Dashboards read the latest ticks across all symbols.
CREATE INDEX price_ticks_time_idx ON price_ticks (time DESC);
