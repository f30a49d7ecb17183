-- 04-monitoring-role.sql — the PostgreSQL exporter's login (monitoring/identities.toml).
--
-- Run by the `monitoring` plugin (phase nndb_init_sql) once per PostgreSQL instance, as the
-- instance's superuser, connected to the maintenance database "postgres", in autocommit.
-- Placeholders (psycopg.sql): {monitor_role} {monitor_group} are identifiers; {connection_limit}
-- an integer; {monitor_password} a SCRAM verifier computed client-side (the stored one while it
-- still matches the secret, so the rotation step runs only when the password really changes).
--
-- The role can log in and nothing else; through pg_monitor it reads every session, setting and
-- statistics view, and no table data. CONNECT on "postgres" only: 00-harden-defaults.sql took it
-- from PUBLIC, and one connection there covers every database (the statistics views are cluster-wide).

-- step: created monitoring role {monitor_role}
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %(monitor_role)s)
CREATE ROLE {monitor_role} LOGIN CONNECTION LIMIT {connection_limit} PASSWORD {monitor_password};

-- step: reset role {monitor_role} to LOGIN without elevated attributes
-- run-if: SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %(monitor_role)s AND (NOT rolcanlogin OR rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls OR rolconnlimit <> %(connection_limit)s))
ALTER ROLE {monitor_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {connection_limit};

-- step: password rotated for {monitor_role}
-- run-if: SELECT rolpassword IS DISTINCT FROM %(monitor_password)s FROM pg_authid WHERE rolname = %(monitor_role)s
ALTER ROLE {monitor_role} PASSWORD {monitor_password};

-- step: {monitor_role} is a member of {monitor_group}
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %(monitor_role)s AND g.rolname = %(monitor_group)s)
GRANT {monitor_group} TO {monitor_role};

-- An explicit grant, not CONNECT through PUBLIC: init_sql's 00-harden-maintenance.sql takes that
-- from PUBLIC in the same phase, in no fixed order relative to this step.
-- step: {monitor_role} may connect to the maintenance database postgres
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = 'postgres' AND a.grantee = %(monitor_role)s::regrole AND a.privilege_type = 'CONNECT')
GRANT CONNECT ON DATABASE postgres TO {monitor_role};
