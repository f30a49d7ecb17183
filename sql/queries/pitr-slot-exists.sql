-- Whether the PITR repository's replication slot exists. Parameters: slot.
SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = %(slot)s)
