-- 00-harden-defaults.sql — the container's own first-start script (psql, as POSTGRES_USER).
--
-- Uploaded into /docker-entrypoint-initdb.d/, which the official image runs once, when the data
-- directory is empty. It closes defaults before any hook has run; everything per service (roles
-- with passwords, databases, schemas, grants) is done by the post-apply hooks from sql/init/,
-- because that needs the secrets and must be re-applied on every deploy, not only the first one.

-- Only the superuser uses the maintenance databases; service roles connect to their own database.
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;

-- PostgreSQL 15 already withholds CREATE on schema public; state it so a future image cannot regress it.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
\connect template1
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
