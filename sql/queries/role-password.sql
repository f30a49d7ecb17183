-- The stored password verifier of a role (NULL: none). Parameters: role.
SELECT rolpassword FROM pg_authid WHERE rolname = %(role)s
