-- The cluster's system identifier: set by initdb, the same for as long as the data directory lives.
-- `nndb upgrade` compares it before and after a new image starts: same data directory, not a fresh one.
SELECT system_identifier::text FROM pg_control_system()
