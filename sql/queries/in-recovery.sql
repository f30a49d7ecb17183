-- Whether the server is still in recovery (a standby, or a recovery not yet promoted). No parameters.
SELECT pg_is_in_recovery()
