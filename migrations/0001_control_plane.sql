-- The control plane: tenants, their apps and the apps' keys.
--
-- Ids are compared byte by byte (COLLATE "C") so that PostgreSQL orders them
-- exactly as the memory store does, whatever the database's locale.

CREATE TABLE tenants (
	id         text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9a-z]{1,32}$'),
	name       text NOT NULL DEFAULT '',
	plan       text NOT NULL DEFAULT '',
	status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE apps (
	id         text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9a-z]{1,32}$'),
	tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants (id),
	name       text NOT NULL DEFAULT '',
	enabled    boolean NOT NULL DEFAULT true,
	-- A tenants.Settings value, stored already normalised.
	settings   jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- Apps(tenant) and the console's tenant-scoped lookups.
CREATE INDEX apps_tenant_id_idx ON apps (tenant_id, id);

-- A key stays listed, revoked, under the app that held it. Only an active
-- key is unique across apps, so a revoked key string may be given to another
-- app, as the memory store allows.
CREATE TABLE app_keys (
	app_id            text COLLATE "C" NOT NULL REFERENCES apps (id),
	key               text COLLATE "C" NOT NULL,
	-- AES-256-GCM under the master key named by kid: nonce || ciphertext || tag,
	-- sealed with AAD "herald/secret/v1|<app_id>|<key>" (security.md SEC-1).
	secret_ciphertext bytea NOT NULL,
	kid               text NOT NULL,
	secret_last4      text NOT NULL DEFAULT '',
	-- Creation order, for listing keys oldest first.
	seq               bigint GENERATED ALWAYS AS IDENTITY,
	-- Order of the active keys as the app lists them now; the first is the
	-- app's primary key.
	position          integer NOT NULL DEFAULT 0,
	created_at        timestamptz NOT NULL DEFAULT now(),
	revoked_at        timestamptz,
	PRIMARY KEY (app_id, key)
);

CREATE UNIQUE INDEX app_keys_active_key_idx ON app_keys (key) WHERE revoked_at IS NULL;
