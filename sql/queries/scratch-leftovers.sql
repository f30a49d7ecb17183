-- Scratch restore databases (nndb_verify_*) nobody is connected to: a verification killed before it
-- dropped its database. Service databases can never match (config refuses database names nndb_*).
SELECT d.datname FROM pg_database d
WHERE d.datname LIKE 'nndb\_verify\_%'
  AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.datname = d.datname)
ORDER BY 1
