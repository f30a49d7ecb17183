-- What sql/init/03-set-permissions.sql would change in one service database, computed read-only
-- (`nndb plan`): one row (kind, name) per object whose privileges that file would grant or revoke.
-- It mirrors that file step by step (PUBLIC loses everything on the database and the schema and
-- CREATE on public; the app role gets CONNECT/TEMPORARY, USAGE, DML on tables, USAGE/SELECT/UPDATE
-- on sequences, EXECUTE on functions and the matching default privileges; the read-only role
-- CONNECT, USAGE, SELECT): change both together. A NULL ACL counts as a change, because a GRANT or
-- REVOKE writes it out explicitly, which is what the permissions step compares.
-- Parameters: database, schema, owner_role, app_role, readonly_role (NULL without one), readonly_enabled.
WITH roles AS (
    SELECT to_regrole(%(app_role)s)::oid AS app,
           CASE WHEN %(readonly_enabled)s THEN to_regrole(%(readonly_role)s)::oid END AS ro,
           %(readonly_enabled)s AS ro_on,
           to_regrole(%(owner_role)s)::oid AS owner_oid
),
objects AS (
    SELECT 'database' AS kind, d.datname::text AS name, d.datacl AS acl, 'database' AS what
    FROM pg_database d WHERE d.datname = %(database)s
    UNION ALL
    SELECT 'schema', n.nspname::text, n.nspacl, CASE WHEN n.nspname = 'public' THEN 'public' ELSE 'schema' END
    FROM pg_namespace n WHERE n.nspname IN (%(schema)s, 'public')
    UNION ALL
    SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'relation' END, c.relname::text, c.relacl,
           CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT 'function', p.oid::regprocedure::text, p.proacl, 'function'
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = %(schema)s AND p.prokind IN ('f', 'a', 'w')
    UNION ALL
    SELECT 'default privileges', w.label, d.defaclacl, 'default ' || w.objtype
    FROM (VALUES ('r', 'tables'), ('S', 'sequences'), ('f', 'functions')) AS w (objtype, label)
    LEFT JOIN LATERAL (
        SELECT d.defaclacl FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
        WHERE n.nspname = %(schema)s AND d.defaclobjtype = w.objtype::"char" AND d.defaclrole = (SELECT owner_oid FROM roles)
    ) AS d ON true
),
wanted (what, grantee, privileges) AS (
    SELECT 'database', app, ARRAY['CONNECT', 'TEMPORARY'] FROM roles
    UNION ALL SELECT 'database', ro, ARRAY['CONNECT'] FROM roles WHERE ro_on
    UNION ALL SELECT 'schema', app, ARRAY['USAGE'] FROM roles
    UNION ALL SELECT 'schema', ro, ARRAY['USAGE'] FROM roles WHERE ro_on
    UNION ALL SELECT 'table', app, ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'] FROM roles
    UNION ALL SELECT 'table', ro, ARRAY['SELECT'] FROM roles WHERE ro_on
    UNION ALL SELECT 'sequence', app, ARRAY['USAGE', 'SELECT', 'UPDATE'] FROM roles
    UNION ALL SELECT 'function', app, ARRAY['EXECUTE'] FROM roles
    UNION ALL SELECT 'default r', app, ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'] FROM roles
    UNION ALL SELECT 'default r', ro, ARRAY['SELECT'] FROM roles WHERE ro_on
    UNION ALL SELECT 'default S', app, ARRAY['USAGE', 'SELECT', 'UPDATE'] FROM roles
    UNION ALL SELECT 'default f', app, ARRAY['EXECUTE'] FROM roles
)
SELECT o.kind, o.name
FROM objects o
WHERE (o.acl IS NULL AND o.what <> 'default r' AND o.what <> 'default S' AND o.what <> 'default f')
   OR (o.what IN ('database', 'schema') AND EXISTS (SELECT FROM aclexplode(o.acl) a WHERE a.grantee = 0))
   OR (o.what = 'public' AND EXISTS (SELECT FROM aclexplode(o.acl) a WHERE a.grantee = 0 AND a.privilege_type = 'CREATE'))
   OR EXISTS (
        SELECT FROM wanted w
        WHERE w.what = o.what
          AND (w.grantee IS NULL
               OR (SELECT count(DISTINCT a.privilege_type) FROM aclexplode(o.acl) a
                   WHERE a.grantee = w.grantee AND a.privilege_type = ANY (w.privileges)) < cardinality(w.privileges))
   )
ORDER BY 1, 2
