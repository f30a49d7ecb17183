-- Whether this instance runs TimescaleDB (available and preloaded): a restore then needs
-- timescaledb_pre_restore()/timescaledb_post_restore() around pg_restore.
SELECT current_setting('shared_preload_libraries') LIKE '%timescaledb%'
   AND EXISTS (SELECT FROM pg_available_extensions WHERE name = 'timescaledb')
