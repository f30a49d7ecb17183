-- Start of every migration (one round trip): its own transaction; objects are created by (and owned
-- by) the service's owner role; unqualified names land in the service's schema; extension functions
-- (installed in public) still resolve.
BEGIN;
SET LOCAL ROLE {owner_role};
SET LOCAL search_path TO {schema}, public
