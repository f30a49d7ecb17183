-- Whether the migration ledger exists in the connected database. No parameters.
SELECT to_regclass('nndb.schema_migrations') IS NOT NULL
