-- 04-replication-role.sql — the role the point-in-time-recovery repository streams with (barman).
--
-- Run by `nndb backup pitr setup` (and the backup registration hook where the policy has
-- pitr = true) once per PostgreSQL instance, as its superuser, connected to "postgres".
-- Placeholders: {replication_role} identifier; {replication_password} a SCRAM verifier computed
-- client-side from the instance's `<instance>_replication` secret (the plaintext never reaches the
-- server). Least privilege for barman's backup_method = postgres with streaming_archiver = on:
-- REPLICATION for pg_basebackup/pg_receivewal, and the monitoring roles and backup functions
-- `barman check`/`backup` use (barman's documented non-superuser setup) — no superuser. (barman 3.4's
-- `switch-wal --force` wants a superuser for its CHECKPOINT: nndb does that switch itself.)

-- step: created replication role {replication_role}
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %(replication_role)s)
CREATE ROLE {replication_role} LOGIN REPLICATION;

-- step: reset role {replication_role} to LOGIN REPLICATION without elevated attributes
-- run-if: SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %(replication_role)s AND (NOT rolcanlogin OR NOT rolreplication OR rolsuper OR rolcreatedb OR rolcreaterole OR rolbypassrls))
ALTER ROLE {replication_role} LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;

-- step: password rotated for {replication_role}
-- run-if: SELECT rolpassword IS DISTINCT FROM %(replication_password)s FROM pg_authid WHERE rolname = %(replication_role)s
ALTER ROLE {replication_role} PASSWORD {replication_password};

-- step: {replication_role} may read settings and statistics, switch WAL and run backups
-- run-if: SELECT NOT pg_has_role(%(replication_role)s, 'pg_read_all_stats', 'MEMBER') OR NOT has_function_privilege(%(replication_role)s, 'pg_switch_wal()', 'EXECUTE')
GRANT pg_read_all_settings, pg_read_all_stats TO {replication_role};
GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean) TO {replication_role};
GRANT EXECUTE ON FUNCTION pg_backup_stop(boolean) TO {replication_role};
GRANT EXECUTE ON FUNCTION pg_switch_wal() TO {replication_role};
GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO {replication_role};

-- barman connects to "postgres" for its checks and backups. An explicit grant, not CONNECT through
-- PUBLIC: init_sql's 00-harden-maintenance.sql takes that from PUBLIC on every hooks run.
-- step: {replication_role} may connect to the maintenance database postgres
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = 'postgres' AND a.grantee = %(replication_role)s::regrole AND a.privilege_type = 'CONNECT')
GRANT CONNECT ON DATABASE postgres TO {replication_role};
