-- The database a backup is restored into before it is swapped in (template0: nothing but the dump in it),
-- owned like the service database it replaces.
CREATE DATABASE {database} OWNER {owner} TEMPLATE template0 ENCODING 'UTF8'
