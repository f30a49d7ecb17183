-- Whether the connected database has the tool's migration ledger (every service database gets one).
SELECT to_regclass('nndb.schema_migrations') IS NOT NULL
