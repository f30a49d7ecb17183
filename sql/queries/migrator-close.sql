-- Superuser, after a service's migrations (also after a failure): the migrator cannot log in again
-- and the run token is void. migrator_role is an identifier, service a literal.
ALTER ROLE {migrator_role} PASSWORD NULL;
DELETE FROM nndb.run_tokens WHERE service = {service}
