-- 01-create-ledger.sql — the migration ledger of one service database.
--
-- Run by the `migrations` plugin as the superuser, connected to the service's database, before any
-- baseline or migration. The ledger lives in the same database as the schema it describes so that a
-- migration and its ledger row commit in ONE transaction: the ledger cannot claim a migration that
-- rolled back, nor miss one that committed. Only the superuser can read or write it.
--
-- Migrations run logged in as {migrator_role} (NOINHERIT, SET ROLE {owner_role} only), which cannot
-- touch nndb. Their ledger row is written by nndb.record_migration(): SECURITY DEFINER (runs as the
-- superuser), search_path pinned, callable by the migrator only, and only with the run token the
-- superuser session issued for this run (nndb.run_tokens holds its SHA-256, never the token). The
-- migration's SQL never sees the token, so it cannot forge, skip or delete a ledger row; and the
-- function refuses (rolling the migration back whole) when the migration changed its own sandbox:
-- granted the migrator or owner role to anyone, changed the migrator's password, set role settings.
-- Placeholders (psycopg.sql identifiers): {migrator_role}.

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

-- step: created run tokens table nndb.run_tokens
-- run-if: SELECT to_regclass('nndb.run_tokens') IS NULL
CREATE TABLE nndb.run_tokens (
    service      text        PRIMARY KEY,
    token_sha256 text        NOT NULL CHECK (token_sha256 ~ '^[0-9a-f]{{64}}$'),
    migrator     name        NOT NULL,
    owner        name        NOT NULL,
    verifier     text        NOT NULL,
    issued_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE nndb.run_tokens IS 'The run token of the nndb run applying migrations now, per service (SHA-256 only); empty between runs';

-- step: created ledger function nndb.record_migration (the migrator's only way to write the ledger)
-- run-if: SELECT to_regprocedure('nndb.record_migration(text,text,integer,text,text,text,integer)') IS NULL
CREATE FUNCTION nndb.record_migration(
    p_token text, p_service text, p_version integer, p_description text, p_script text, p_checksum text, p_execution_ms integer
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    run nndb.run_tokens%ROWTYPE;
    migrator oid;
    owner oid;
BEGIN
    SELECT * INTO run FROM nndb.run_tokens t
    WHERE t.service = p_service AND t.token_sha256 = encode(sha256(convert_to(p_token, 'UTF8')), 'hex');
    IF NOT FOUND OR run.migrator <> session_user THEN
        RAISE EXCEPTION 'nndb.record_migration: no valid run token for service % (only the nndb run applying it may record a migration)', p_service
            USING ERRCODE = '42501';
    END IF;
    migrator := to_regrole(quote_ident(run.migrator));
    owner := to_regrole(quote_ident(run.owner));
    IF EXISTS (SELECT FROM pg_auth_members m
               WHERE m.roleid = migrator OR (m.roleid = owner AND m.member <> migrator)
                  OR (m.member IN (owner, migrator) AND m.roleid <> owner)) THEN
        RAISE EXCEPTION 'the migration changed role memberships of % or %; a migration may not grant roles', run.owner, run.migrator
            USING ERRCODE = '42501';
    END IF;
    IF (SELECT a.rolpassword FROM pg_authid a WHERE a.oid = migrator) IS DISTINCT FROM run.verifier THEN
        RAISE EXCEPTION 'the migration changed the password of %; a migration may not alter roles', run.migrator USING ERRCODE = '42501';
    END IF;
    IF EXISTS (SELECT FROM pg_db_role_setting s WHERE s.setrole IN (owner, migrator)) THEN
        RAISE EXCEPTION 'the migration set role settings on % or %; a migration may not alter roles', run.owner, run.migrator
            USING ERRCODE = '42501';
    END IF;
    INSERT INTO nndb.schema_migrations (service, version, description, script, checksum, execution_ms, applied_by)
    VALUES (p_service, p_version, p_description, p_script, p_checksum, p_execution_ms, session_user);
END
$fn$;
REVOKE ALL ON FUNCTION nndb.record_migration(text, text, integer, text, text, text, integer) FROM PUBLIC;

-- step: {migrator_role} may call nndb.record_migration (and nothing else in nndb)
-- run-if: SELECT NOT has_function_privilege(%(migrator_role)s, 'nndb.record_migration(text,text,integer,text,text,text,integer)', 'EXECUTE')
GRANT USAGE ON SCHEMA nndb TO {migrator_role};
GRANT EXECUTE ON FUNCTION nndb.record_migration(text, text, integer, text, text, text, integer) TO {migrator_role};
