-- Databases on the instance that no [services.*] table names: candidates for a service removed from config.
-- The maintenance and template databases and the tool's own nndb_* ones are never a service's.
-- Parameters: configured (the service databases config puts on this instance, a text array).
SELECT datname FROM pg_database
WHERE NOT datistemplate
  AND datallowconn
  AND datname <> 'postgres'
  AND datname NOT LIKE 'nndb\_%%'
  AND datname <> ALL (%(configured)s::text[])
ORDER BY 1
