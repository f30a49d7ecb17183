-- `nndb drift`: role settings (ALTER ROLE ... SET), per role and database ('' = every database).
SELECT r.rolname::text, coalesce(d.datname::text, ''), array_to_string(s.setconfig, ', ')
FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase
ORDER BY 1, 2
