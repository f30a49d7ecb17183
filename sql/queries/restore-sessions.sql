-- Sessions connected to one database other than ours (a restore refuses, or with --force ends, them).
-- Parameters: database.
SELECT pid, coalesce(usename::text, '?'), coalesce(nullif(application_name, ''), '-'), coalesce(host(client_addr), 'local socket')
FROM pg_stat_activity
WHERE datname = %(database)s AND pid <> pg_backend_pid()
ORDER BY pid
