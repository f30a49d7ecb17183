-- The current transaction reads only (plan: nothing it runs may change the live databases). No parameters.
SET TRANSACTION READ ONLY
