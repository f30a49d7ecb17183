-- analytics baseline: market prices and portfolio value over time (TimescaleDB instance).
-- Applied once, as ledger version 0, in one transaction, as analytics_owner with search_path = <schema>, public.
-- Both tables become hypertables where the timescaledb extension is installed (sql/init/02 installs
-- it where the instance ships and preloads it); elsewhere they stay plain tables, said in one line.

CREATE TABLE price_ticks (
    time   timestamptz   NOT NULL,
    symbol text          NOT NULL,
    price  numeric(20,8) NOT NULL CHECK (price >= 0),
    volume bigint        NOT NULL DEFAULT 0,
    PRIMARY KEY (symbol, time)
);

CREATE TABLE portfolio_snapshots (
    time         timestamptz   NOT NULL,
    portfolio_id bigint        NOT NULL,
    total_value  numeric(20,4) NOT NULL,
    currency     char(3)       NOT NULL DEFAULT 'USD',
    PRIMARY KEY (portfolio_id, time)
);

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('price_ticks', 'time', if_not_exists => TRUE);
        PERFORM create_hypertable('portfolio_snapshots', 'time', if_not_exists => TRUE);
    ELSE
        RAISE NOTICE 'timescaledb extension not available: price_ticks and portfolio_snapshots stay plain tables';
    END IF;
END
$$;
