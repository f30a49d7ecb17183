-- 01-create-ledger.sql — the migration ledger of one service database.
--
-- Run by the `migrations` plugin as the superuser, connected to the service's database, before any
-- baseline or migration. The ledger lives in the same database as the schema it describes so that a
-- migration and its ledger row commit in ONE transaction: the ledger cannot claim a migration that
-- rolled back, nor miss one that committed. Only the superuser can read or write it.

-- step: created schema nndb (migration ledger)
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'nndb')
CREATE SCHEMA nndb;
REVOKE ALL ON SCHEMA nndb FROM PUBLIC;

-- step: created ledger table nndb.schema_migrations
-- run-if: SELECT to_regclass('nndb.schema_migrations') IS NULL
CREATE TABLE nndb.schema_migrations (
    service      text        NOT NULL,
    version      integer     NOT NULL CHECK (version >= 0),
    description  text        NOT NULL,
    script       text        NOT NULL,
    checksum     text        NOT NULL CHECK (checksum ~ '^[0-9a-f]{{64}}$'),
    applied_at   timestamptz NOT NULL DEFAULT now(),
    execution_ms integer     NOT NULL,
    applied_by   text        NOT NULL DEFAULT session_user,
    PRIMARY KEY (service, version)
);
COMMENT ON TABLE nndb.schema_migrations IS 'Applied migrations (nexanest_db); version 0 is the baseline from sql/schemas/<service>/';
