-- End every session on one database but ours (`nndb backup restore --force`). Parameters: database.
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE datname = %(database)s AND pid <> pg_backend_pid()
