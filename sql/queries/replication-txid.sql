-- A transaction id: proves the promoted node takes writes (a standby refuses to assign one). No parameters.
SELECT txid_current()
