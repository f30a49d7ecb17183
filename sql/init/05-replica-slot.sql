-- 05-replica-slot.sql — the physical replication slot of one streaming replica ([replication.<instance>]).
--
-- Run by the init_sql hook step once per replica, on the instance's primary, as its superuser,
-- after 04-replication-role.sql (the role the replica clones and streams with). The slot exists
-- before the replica container does (it depends on the hooks): its pg_basebackup streams through
-- it (-S), and the primary keeps the WAL the replica has not received. A slot of a replica taken
-- out of the config is not dropped here (it may still be streaming): NndbReplicationSlotInactive
-- alerts on it, and docs/runbooks/replication.md says how to drop it.
-- Placeholders: {slot} a literal (the slot name, nndb_replica_<replica>), {slot_name} the same as an identifier (title).

-- step: created replication slot {slot_name}
-- run-if: SELECT NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = %(slot)s)
SELECT pg_create_physical_replication_slot({slot});
