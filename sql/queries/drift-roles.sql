-- `nndb drift`: every role of the instance but PostgreSQL's predefined ones (pg_*), with the attributes
-- sql/init/ sets and the stored password verifier (compared with the secret client-side, never printed).
SELECT a.rolname::text, a.rolsuper, a.rolinherit, a.rolcreaterole, a.rolcreatedb, a.rolcanlogin, a.rolreplication,
       a.rolbypassrls, a.rolconnlimit, a.rolpassword
FROM pg_authid a
WHERE a.rolname NOT LIKE 'pg\_%'
ORDER BY 1
