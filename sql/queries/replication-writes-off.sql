-- Switchover, step 1 on the primary: new transactions default to read-only (ALTER SYSTEM then a reload).
ALTER SYSTEM SET default_transaction_read_only = on
