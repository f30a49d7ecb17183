-- Close the current WAL segment; its file name. No parameters.
SELECT pg_walfile_name(pg_switch_wal())
