-- No new sessions on this database (a restore's swap: the live one until it is renamed aside).
ALTER DATABASE {database} WITH ALLOW_CONNECTIONS false
