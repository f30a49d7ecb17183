-- `nndb drift`: what sql/init/00-harden-maintenance.sql and the monitoring/replication roles' CONNECT grants
-- decide in the maintenance databases, as (object, privilege, grantee): every privilege on "postgres"
-- and "template1" but their owner's, and CREATE on schema public of "postgres" (this session's database).
SELECT 'database ' || d.datname, a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datname IN ('postgres', 'template1') AND a.grantee <> d.datdba
UNION ALL
SELECT 'schema public', a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
WHERE n.nspname = 'public' AND a.privilege_type = 'CREATE' AND a.grantee <> n.nspowner
ORDER BY 1, 2, 3
