-- Start of every migration transaction: objects are created by (and owned by) the service's owner
-- role, unqualified names land in the service's schema, and extension functions (public) resolve.
SET LOCAL ROLE {owner_role};
SET LOCAL search_path TO {schema}, public
