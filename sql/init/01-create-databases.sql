-- 01-create-databases.sql — roles and database of one service.
--
-- Run by the `init_sql` plugin (phase nndb_init_sql) once per service, as the instance's superuser,
-- connected to the maintenance database "postgres", in autocommit (CREATE DATABASE cannot run in a
-- transaction). Not for /docker-entrypoint-initdb.d: the placeholders below are filled by the hooks.
--
-- Placeholders (psycopg.sql): {owner_role} {migrator_role} {app_role} {readonly_role} {database} are identifiers;
-- {owner_name} {migrator_name} are the same names as literals (for the DO block below);
-- {app_password} {readonly_password} are SCRAM verifiers computed client-side (the plaintext never
-- reaches the server or its log). Each verifier is the stored one when it still matches the
-- current secret, so "IS DISTINCT FROM" below is true only when the password really changes.
-- Flag: readonly_role_enabled (config: services.<name>.readonly_role).

-- step: created role {owner_role} (NOLOGIN, owns the service's objects)
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %(owner_role)s)
CREATE ROLE {owner_role} NOLOGIN;

-- step: reset role {owner_role} to NOLOGIN without elevated attributes
-- run-if: SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %(owner_role)s AND (rolcanlogin OR rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls))
ALTER ROLE {owner_role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- The migrator: the only login that applies the service's migrations (nexanest_db/ledger.py). NOINHERIT
-- and a member of {owner_role} only, so SET ROLE {owner_role} works and nothing more: RESET ROLE lands
-- on a role with no privileges of its own, and it can never become the superuser. Its password is
-- NULL except during a run, which sets a one-run random one (VALID UNTIL bounded) and clears it again.
-- step: created migrator login role {migrator_role} (NOINHERIT, may only SET ROLE {owner_role})
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %(migrator_role)s)
CREATE ROLE {migrator_role} LOGIN NOINHERIT;

-- step: reset role {migrator_role} to LOGIN NOINHERIT without elevated attributes
-- run-if: SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %(migrator_role)s AND (NOT rolcanlogin OR rolinherit OR rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls))
ALTER ROLE {migrator_role} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- step: closed the login of {migrator_role} (left open by an interrupted run)
-- run-if: SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %(migrator_role)s
ALTER ROLE {migrator_role} PASSWORD NULL;

-- step: {migrator_role} may SET ROLE {owner_role}
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_auth_members m WHERE m.roleid = to_regrole(%(owner_role)s) AND m.member = to_regrole(%(migrator_role)s))
GRANT {owner_role} TO {migrator_role};

-- Nobody else may become the owner or the migrator, and neither carries role settings (both could
-- only have come from outside this file, e.g. a hand-made grant).
-- step: removed other members and role settings of {owner_role} and {migrator_role}
-- run-if: SELECT EXISTS (SELECT FROM pg_auth_members m WHERE m.roleid = to_regrole(%(migrator_role)s) OR (m.roleid = to_regrole(%(owner_role)s) AND m.member <> to_regrole(%(migrator_role)s)) OR (m.member IN (to_regrole(%(owner_role)s), to_regrole(%(migrator_role)s)) AND m.roleid <> to_regrole(%(owner_role)s))) OR EXISTS (SELECT FROM pg_db_role_setting WHERE setrole IN (to_regrole(%(owner_role)s), to_regrole(%(migrator_role)s)))
DO $$
DECLARE
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT m.roleid::regrole AS granted, m.member::regrole AS member FROM pg_auth_members m
        WHERE m.roleid = to_regrole({migrator_name})
           OR (m.roleid = to_regrole({owner_name}) AND m.member <> to_regrole({migrator_name}))
           OR (m.member IN (to_regrole({owner_name}), to_regrole({migrator_name})) AND m.roleid <> to_regrole({owner_name}))
    LOOP
        EXECUTE format('REVOKE %s FROM %s CASCADE', grant_row.granted, grant_row.member);
    END LOOP;
    FOR grant_row IN
        SELECT s.setrole::regrole AS member, d.datname FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
        WHERE s.setrole IN (to_regrole({owner_name}), to_regrole({migrator_name}))
    LOOP
        IF grant_row.datname IS NULL THEN
            EXECUTE format('ALTER ROLE %s RESET ALL', grant_row.member);
        ELSE
            EXECUTE format('ALTER ROLE %s IN DATABASE %I RESET ALL', grant_row.member, grant_row.datname);
        END IF;
    END LOOP;
END
$$;

-- step: created login role {app_role}
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %(app_role)s)
CREATE ROLE {app_role} LOGIN;

-- step: reset role {app_role} to LOGIN without elevated attributes
-- run-if: SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %(app_role)s AND (NOT rolcanlogin OR rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls))
ALTER ROLE {app_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- step: password rotated for {app_role}
-- run-if: SELECT rolpassword IS DISTINCT FROM %(app_password)s FROM pg_authid WHERE rolname = %(app_role)s
ALTER ROLE {app_role} PASSWORD {app_password};

-- step: created read-only login role {readonly_role}
-- run-if: SELECT %(readonly_role_enabled)s AND NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %(readonly_role)s)
CREATE ROLE {readonly_role} LOGIN;

-- step: reset role {readonly_role} to LOGIN without elevated attributes
-- run-if: SELECT %(readonly_role_enabled)s AND EXISTS (SELECT FROM pg_roles WHERE rolname = %(readonly_role)s AND (NOT rolcanlogin OR rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls))
ALTER ROLE {readonly_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

-- step: password rotated for {readonly_role}
-- run-if: SELECT %(readonly_role_enabled)s AND rolpassword IS DISTINCT FROM %(readonly_password)s FROM pg_authid WHERE rolname = %(readonly_role)s
ALTER ROLE {readonly_role} PASSWORD {readonly_password};

-- step: created database {database} (owner {owner_role})
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = %(database)s)
CREATE DATABASE {database} OWNER {owner_role} ENCODING 'UTF8';

-- Closed from the start (03-set-permissions.sql grants CONNECT to the service's own roles): a
-- database is never open to every role, not even before the permissions phase has run.
-- step: database {database}: PUBLIC may not connect or create temp tables
-- run-if: SELECT datacl IS NULL OR EXISTS (SELECT FROM aclexplode(datacl) a WHERE a.grantee = 0 AND a.privilege_type IN ('CONNECT', 'TEMPORARY')) FROM pg_database WHERE datname = %(database)s
REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC;

-- step: database {database} handed back to {owner_role}
-- run-if: SELECT EXISTS (SELECT FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = %(database)s AND r.rolname <> %(owner_role)s)
ALTER DATABASE {database} OWNER TO {owner_role};
