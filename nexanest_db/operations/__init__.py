"""Operations: what commands and hook steps share (migrate, backup, restore, status, drift).

A command in ``nexanest_db/commands/`` and a hook step in ``nexanest_db/plugins/`` are thin callers of
these modules; nothing here imports from either.
"""
