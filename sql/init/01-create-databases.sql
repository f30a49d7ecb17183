-- 01-create-databases.sql — roles and database of one service.
--
-- Run by the `init_sql` plugin (phase nndb_init_sql) once per service, as the instance's superuser,
-- connected to the maintenance database "postgres", in autocommit (CREATE DATABASE cannot run in a
-- transaction). Not for /docker-entrypoint-initdb.d: the placeholders below are filled by the hooks.
--
-- Placeholders (psycopg.sql): {owner_role} {app_role} {readonly_role} {database} are identifiers;
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

-- step: database {database} handed back to {owner_role}
-- run-if: SELECT EXISTS (SELECT FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = %(database)s AND r.rolname <> %(owner_role)s)
ALTER DATABASE {database} OWNER TO {owner_role};
