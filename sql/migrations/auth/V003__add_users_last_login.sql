-- Dormant-account reports need the last successful log-in.
ALTER TABLE users ADD COLUMN last_login_at timestamptz;
