-- Console users, their roles in tenants, and their signed-in sessions
-- (tenants.PostgresUsers).

-- Emails are stored trimmed and lower-cased by the application, so the
-- unique constraint makes them unique whatever case users type. The column
-- compares bytes (COLLATE "C"): lower() then changes only ASCII, which Go
-- has already lower-cased, so the check cannot refuse a normalised email in
-- any database locale, and ORDER BY email matches the memory store.
CREATE TABLE console_users (
	id             text COLLATE "C" PRIMARY KEY CHECK (id ~ '^u[0-9a-f]{12}$'),
	email          text COLLATE "C" NOT NULL CHECK (email = lower(email)),
	-- An argon2id hash in PHC form (authz.HashPassword).
	password_hash  text NOT NULL CHECK (password_hash <> ''),
	platform_admin boolean NOT NULL DEFAULT false,
	disabled       boolean NOT NULL DEFAULT false,
	created_at     timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT console_users_email_key UNIQUE (email)
);

-- Deleting a user does not cascade to memberships: removing them one by one
-- is what keeps the last-owner rule.
CREATE TABLE console_memberships (
	user_id   text COLLATE "C" NOT NULL REFERENCES console_users (id),
	tenant_id text COLLATE "C" NOT NULL REFERENCES tenants (id),
	role      text NOT NULL CHECK (role IN ('owner', 'operator', 'viewer')),
	PRIMARY KEY (user_id, tenant_id)
);

-- Members(tenant), and the rows the last-owner rule locks.
CREATE INDEX console_memberships_tenant_id_idx ON console_memberships (tenant_id, user_id);

-- Only the SHA-256 of a session id is stored, so rows read from the
-- database or a backup cannot be used as cookies.
CREATE TABLE console_sessions (
	id_sha256    bytea PRIMARY KEY CHECK (length(id_sha256) = 32),
	user_id      text COLLATE "C" NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
	-- The per-session CSRF token the console's forms echo back.
	csrf         text NOT NULL,
	created_at   timestamptz NOT NULL,
	last_seen_at timestamptz NOT NULL,
	expires_at   timestamptz NOT NULL
);

-- Signing a user out everywhere, and purging expired sessions.
CREATE INDEX console_sessions_user_id_idx ON console_sessions (user_id);
CREATE INDEX console_sessions_expires_at_idx ON console_sessions (expires_at);
