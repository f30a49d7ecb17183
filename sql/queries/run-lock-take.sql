-- The run lock (docs/hooks.md): a session-level advisory lock, without waiting. Parameters: classid, objid.
SELECT pg_try_advisory_lock(%(classid)s, %(objid)s)
