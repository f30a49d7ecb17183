-- A database restored beside the live one (`--into NAME`): nobody but its owner and superusers may connect.
REVOKE ALL ON DATABASE {database} FROM PUBLIC
