-- `nndb upgrade --path dump-restore`, step 1: a service login role may not log in while its data moves
-- to the new major (the superuser, which takes the backup, is not affected). {role} is an identifier.
ALTER ROLE {role} NOLOGIN
