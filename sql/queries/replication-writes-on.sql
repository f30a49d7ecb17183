-- Switchover abandoned: the primary takes writes again.
ALTER SYSTEM RESET default_transaction_read_only
