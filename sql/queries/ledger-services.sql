-- The services the migration ledger of the connected database has migrations of (run only where
-- ledger-exists.sql says there is a ledger). A database restored beside the live one
-- (`nndb backup restore --into`) names the service it came from.
SELECT DISTINCT service FROM nndb.schema_migrations ORDER BY 1
