-- 02-apply-schemas.sql — the service's schema namespace and extensions, before its baseline and migrations.
--
-- Run by the `migrations` plugin (phase nndb_apply_migrations) once per service, as the instance's
-- superuser, connected to the service's database, in autocommit, right before the migration ledger
-- and sql/schemas/<service>/ are applied. Not for /docker-entrypoint-initdb.d.
-- Placeholders (psycopg.sql identifiers): {schema} {owner_role} {migrator_role} {database}.

-- step: created schema {schema} (owner {owner_role})
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = %(schema)s)
CREATE SCHEMA {schema} AUTHORIZATION {owner_role};

-- step: schema {schema} handed back to {owner_role}
-- run-if: SELECT EXISTS (SELECT FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = %(schema)s AND r.rolname <> %(owner_role)s)
ALTER SCHEMA {schema} OWNER TO {owner_role};

-- An explicit grant (not PUBLIC's, which 03-set-permissions.sql revokes).
-- step: database {database}: {migrator_role} may connect (to apply migrations as {owner_role})
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = %(database)s AND a.grantee = to_regrole(%(migrator_role)s) AND a.privilege_type = 'CONNECT')
GRANT CONNECT ON DATABASE {database} TO {migrator_role};

-- TimescaleDB where the instance ships it AND preloads it (CREATE EXTENSION needs both). Where it
-- does not, the analytics baseline keeps plain tables and says so in one line.
-- step: created extension timescaledb
-- run-if: SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb') AND current_setting('shared_preload_libraries') LIKE '%%timescaledb%%' AND NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb')
CREATE EXTENSION IF NOT EXISTS timescaledb;
