-- `nndb status`: one PostgreSQL instance at a glance (read-only). No parameters.
-- connections_used counts client sessions (as the exporter's pg_stat_activity_count and the
-- NndbPostgresConnectionsNearLimit rule do), the status command's own session included.
SELECT
    current_setting('server_version') AS version,
    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections_used,
    current_setting('max_connections')::int AS connections_max,
    extract(epoch FROM now() - pg_postmaster_start_time())::bigint AS uptime_s,
    current_setting('archive_mode') AS archive_mode
