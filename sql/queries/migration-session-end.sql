-- End of a migration, before its ledger row is written: back to the superuser (only it may write the ledger).
RESET ROLE
