-- Reconciliation needs to know when a holding last changed.
ALTER TABLE holdings ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
