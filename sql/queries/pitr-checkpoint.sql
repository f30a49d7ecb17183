-- A checkpoint, so that there is always a WAL segment to switch. No parameters.
CHECKPOINT
