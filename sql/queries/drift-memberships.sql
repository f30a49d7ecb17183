-- `nndb drift`: every role membership of the instance (who may become whom), by name.
SELECT u.rolname::text AS member, g.rolname::text AS granted, m.admin_option
FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member JOIN pg_roles g ON g.oid = m.roleid
ORDER BY 1, 2
