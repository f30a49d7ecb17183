-- Row count of one table; {table} is a qualified identifier.
SELECT count(*) FROM {table}
