-- Whether a database exists. Parameters: database.
SELECT EXISTS (SELECT FROM pg_database WHERE datname = %(database)s)
