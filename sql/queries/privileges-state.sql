-- Everything 03-set-permissions.sql can change in one service database, as comparable rows.
-- The permissions plugin reads it before and after running the grants and commits only on a difference.
-- Parameters: database, schema.
SELECT 'database', datname::text, coalesce(datacl::text, '') FROM pg_database WHERE datname = %(database)s
UNION ALL
SELECT 'schema', nspname::text, coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname IN (%(schema)s, 'public')
UNION ALL
SELECT 'relation', c.relname::text, coalesce(c.relacl::text, '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'function', p.oid::regprocedure::text, coalesce(p.proacl::text, '')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'default privileges', d.defaclrole::regrole::text || ' '
       || CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions' WHEN 'T' THEN 'types' ELSE 'schemas' END,
       d.defaclacl::text
FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace WHERE n.nspname = %(schema)s
ORDER BY 1, 2
