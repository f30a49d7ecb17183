-- Promote a standby and wait (bounded) until it takes writes.
SELECT pg_promote(wait => true, wait_seconds => %(wait_seconds)s) AS promoted
