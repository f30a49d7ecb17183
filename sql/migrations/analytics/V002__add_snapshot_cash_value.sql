-- Snapshots split out the cash part of a portfolio's value.
ALTER TABLE portfolio_snapshots ADD COLUMN cash_value numeric(20,4) NOT NULL DEFAULT 0;
