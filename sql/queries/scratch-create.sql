-- The scratch database a backup is restored into to prove it (template0: nothing but the dump in it).
CREATE DATABASE {database} TEMPLATE template0 ENCODING 'UTF8'
