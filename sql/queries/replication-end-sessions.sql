-- Switchover, step 2 on the primary: end every client session but this one (open write transactions end with them).
SELECT count(pg_terminate_backend(pid))::int AS ended
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
