-- Log-in looks users up by e-mail, case-insensitively; one account per address.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
