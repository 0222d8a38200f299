-- The audit log (package services/audit): an append-only, hash-chained
-- record of every change made through the console and the management API,
-- one chain per tenant plus the "platform" chain.
--
-- No foreign keys: entries outlive the tenants and apps they name, and some
-- (a failed login) name things that never existed.

CREATE TABLE audit_log (
	chain      text COLLATE "C" NOT NULL,
	seq        bigint NOT NULL CHECK (seq > 0),
	-- Microsecond precision, which is what the entry's hash was computed on.
	time       timestamptz NOT NULL,
	actor      text NOT NULL,
	actor_ip   text NOT NULL DEFAULT '',
	tenant_id  text NOT NULL DEFAULT '',
	app_id     text NOT NULL DEFAULT '',
	action     text NOT NULL,
	target     text NOT NULL DEFAULT '',
	reason     text NOT NULL DEFAULT '',
	-- A JSON object of strings; never secrets or payloads, only their hashes.
	details    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'
		AND NOT jsonb_path_exists(details, '$.* ? (@.type() != "string")')),
	prev_hash  text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
	hash       text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
	-- Also the index the console lists by: it is scanned backwards for
	-- (chain, seq DESC), so a second index in that order would only cost
	-- writes and space.
	PRIMARY KEY (chain, seq)
);

-- The console's per-app view of a tenant's chain, newest first.
CREATE INDEX audit_log_app_idx ON audit_log (chain, app_id, seq DESC);

-- Signed heads of chains (Ed25519 over chain, seq and head). A chain that is
-- shorter than one of its anchors was truncated; one whose entry at an
-- anchored seq has another hash was rewritten. Copies kept outside the
-- database are what protects against someone who can delete these rows too.
CREATE TABLE audit_anchors (
	chain      text COLLATE "C" NOT NULL,
	seq        bigint NOT NULL CHECK (seq > 0),
	head       text NOT NULL CHECK (head ~ '^[0-9a-f]{64}$'),
	signature  bytea NOT NULL CHECK (length(signature) = 64),
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (chain, seq)
);

-- Both tables refuse every UPDATE, DELETE and TRUNCATE, whoever runs it, so
-- a bug or a stray statement of the application role cannot rewrite
-- history. Their owner can still disable the trigger; the hash chain and the
-- anchors are what reveal that.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
		USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_anchors_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_anchors
	FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
