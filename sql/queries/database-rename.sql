-- Rename a database (no session may be connected to it). A restore renames twice in one transaction:
-- the live database aside, the restored one into its place.
ALTER DATABASE {database} RENAME TO {new_name}
