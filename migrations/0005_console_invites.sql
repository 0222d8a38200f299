-- Invitations to join a tenant (tenants.PostgresUsers). Only the SHA-256
-- of an invite's token is stored: the token itself is only in the link
-- shown to the owner who made it.
CREATE TABLE console_invites (
	token_sha256 bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
	tenant_id    text COLLATE "C" NOT NULL REFERENCES tenants (id),
	email        text COLLATE "C" NOT NULL CHECK (email = lower(email)),
	role         text NOT NULL CHECK (role IN ('owner', 'operator', 'viewer')),
	created_by   text NOT NULL,
	created_at   timestamptz NOT NULL,
	expires_at   timestamptz NOT NULL,
	-- Set once, when the invite is accepted; a used invite never works
	-- again.
	used_at      timestamptz NULL
);

-- A tenant's pending invites.
CREATE INDEX console_invites_tenant_id_idx ON console_invites (tenant_id, created_at);
