-- Superuser, in the service database, before its migrations: the migrator's one-run password (a
-- SCRAM verifier computed client-side, valid for two hours at most) and the run token
-- (its SHA-256) that nndb.record_migration checks. Only migrator_role is an identifier, the rest are literals.
ALTER ROLE {migrator_role} PASSWORD {verifier} VALID UNTIL {valid_until};
INSERT INTO nndb.run_tokens (service, token_sha256, migrator, owner, verifier)
VALUES ({service}, {token_sha256}, {migrator_name}, {owner_name}, {verifier})
ON CONFLICT (service) DO UPDATE
SET token_sha256 = EXCLUDED.token_sha256, migrator = EXCLUDED.migrator, owner = EXCLUDED.owner, verifier = EXCLUDED.verifier, issued_at = now()
