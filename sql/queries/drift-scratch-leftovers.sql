-- `nndb drift`: reference databases (nndb_drift_*) nobody is connected to: a run killed before it
-- dropped its scratch database. Service databases can never match (config refuses database names nndb_*).
SELECT d.datname FROM pg_database d
WHERE d.datname LIKE 'nndb\_drift\_%'
  AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.datname = d.datname)
ORDER BY 1
