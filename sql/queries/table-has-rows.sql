-- Whether one table holds at least one row (reads one row at most); {table} is a qualified identifier.
SELECT EXISTS (SELECT FROM {table})
