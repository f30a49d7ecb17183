-- `nndb drift`: the scratch database the reference is built in, created the way
-- sql/init/01-create-databases.sql creates a service's database (same owner, encoding and template),
-- so what the files put into it is what they put into the live one. Dropped again at the end of the run.
CREATE DATABASE {database} OWNER {owner_role} ENCODING 'UTF8'
