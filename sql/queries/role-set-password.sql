-- Set a role's password to a SCRAM verifier computed by nndb (never the plaintext: the statement may reach the
-- server log). The role is an identifier, the verifier a literal.
ALTER ROLE {role} PASSWORD {verifier}
