-- The server's archive_mode (off / on / always). No parameters.
SHOW archive_mode
