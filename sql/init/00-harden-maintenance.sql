-- 00-harden-maintenance.sql — the maintenance databases, on every run.
--
-- Run by the `init_sql` plugin (phase nndb_init_sql) once per PostgreSQL instance, as the superuser,
-- connected to "postgres", in autocommit, before the services' roles and databases. It re-applies
-- what sql/first-start/00-harden-defaults.sql does when a container initializes an empty data
-- directory, because that never ran on an existing volume or a server the image did not create:
-- only the superuser uses the maintenance databases; service roles connect to their own database.
-- (template1's schema public is left alone: connecting to template1 would block CREATE DATABASE.)

-- step: database postgres: PUBLIC may not connect or create temp tables
-- run-if: SELECT datacl IS NULL OR EXISTS (SELECT FROM aclexplode(datacl) a WHERE a.grantee = 0 AND a.privilege_type IN ('CONNECT', 'TEMPORARY')) FROM pg_database WHERE datname = 'postgres'
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;

-- step: database template1: PUBLIC may not connect or create temp tables
-- run-if: SELECT datacl IS NULL OR EXISTS (SELECT FROM aclexplode(datacl) a WHERE a.grantee = 0 AND a.privilege_type IN ('CONNECT', 'TEMPORARY')) FROM pg_database WHERE datname = 'template1'
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;

-- step: database postgres: PUBLIC may not create in schema public
-- run-if: SELECT has_schema_privilege('public', 'public', 'CREATE')
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
