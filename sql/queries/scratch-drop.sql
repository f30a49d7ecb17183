-- Drop a scratch restore database, even if a connection lingers.
DROP DATABASE IF EXISTS {database} WITH (FORCE)
