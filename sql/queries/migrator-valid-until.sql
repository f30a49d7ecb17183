-- The end of a migrator's one-run login window, as the server's clock gives it. Parameters: valid (an interval).
SELECT (now() + %(valid)s::interval)::text
