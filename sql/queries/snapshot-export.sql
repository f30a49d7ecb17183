-- Start of a backup: one read-only snapshot shared by pg_dump (--snapshot) and the row counts,
-- so the counts describe exactly what the dump contains. Run as the first statement of a transaction.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY
