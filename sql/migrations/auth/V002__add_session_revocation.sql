-- Sessions can be revoked before they expire (log-out everywhere); active-session lookups skip revoked ones.
ALTER TABLE sessions ADD COLUMN revoked_at timestamptz;
CREATE INDEX sessions_active_idx ON sessions (user_id) WHERE revoked_at IS NULL;
