-- `nndb upgrade --path dump-restore`: the service login role logs in again (nothing changed, or rolled back).
ALTER ROLE {role} LOGIN
