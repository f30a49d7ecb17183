-- 03-set-permissions.sql — least privilege for one service.
--
-- Run by the `permissions` plugin (phase nndb_set_permissions) once per service, as the instance's
-- superuser, connected to the service's database, ALL STEPS IN ONE TRANSACTION: the plugin compares
-- the privileges (sql/queries/privileges-state.sql) before and after and commits only when they
-- differ, so a re-run writes nothing and reports nothing. Not for /docker-entrypoint-initdb.d.
-- Placeholders (psycopg.sql identifiers): {database} {schema} {owner_role} {app_role} {readonly_role}.
--
-- Model: {owner_role} owns everything (NOLOGIN); {app_role} reads and writes its own schema only;
-- {readonly_role} (analytics) only reads; PUBLIC gets nothing (no CONNECT, no CREATE anywhere).
-- Other services' roles cannot even connect to this database.

-- step: database {database}: PUBLIC may not connect or create temp tables
REVOKE ALL ON DATABASE {database} FROM PUBLIC;

-- step: database {database}: {app_role} may connect
GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {app_role};

-- step: PUBLIC may not create in schema public
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- step: schema {schema}: PUBLIC has no access
REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;

-- step: schema {schema}: {app_role} reads and writes existing objects
GRANT USAGE ON SCHEMA {schema} TO {app_role};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app_role};
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {app_role};
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {app_role};

-- Default privileges: objects the owner creates later (new migrations run as {owner_role}) follow.
-- step: schema {schema}: future objects of {owner_role} follow for {app_role}
ALTER DEFAULT PRIVILEGES FOR ROLE {owner_role} IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app_role};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner_role} IN SCHEMA {schema} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {app_role};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner_role} IN SCHEMA {schema} GRANT EXECUTE ON FUNCTIONS TO {app_role};

-- step: database {database}: {readonly_role} may connect and read
-- run-if: SELECT %(readonly_role_enabled)s
GRANT CONNECT ON DATABASE {database} TO {readonly_role};
GRANT USAGE ON SCHEMA {schema} TO {readonly_role};
GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {readonly_role};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner_role} IN SCHEMA {schema} GRANT SELECT ON TABLES TO {readonly_role};
