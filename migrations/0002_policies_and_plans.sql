-- Plans bound the limits of their tenants' apps; channel policies say who
-- may subscribe to and send client events on which channels of an app.

-- A plan's limits use the JSON names of an app's settings.limits; 0 means
-- no ceiling. The quotas an app leaves at 0 (max_connections,
-- new_connections_per_second, publishes_per_second) take the plan's value.
CREATE TABLE plans (
	name       text COLLATE "C" PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'),
	limits     jsonb NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO plans (name, limits) VALUES
	('free', '{"max_connections": 100, "new_connections_per_second": 20, "publishes_per_second": 100,
		"max_connections_per_user": 100, "subscriptions_per_second": 20, "max_payload_bytes": 10240,
		"max_channels_per_event": 100, "max_batch_events": 10, "client_events_per_second": 10,
		"max_channels_per_connection": 100, "max_presence_members": 100}'),
	('pro', '{"max_connections": 10000, "new_connections_per_second": 500, "publishes_per_second": 2000,
		"max_connections_per_user": 1000, "subscriptions_per_second": 200, "max_payload_bytes": 65536,
		"max_channels_per_event": 100, "max_batch_events": 10, "client_events_per_second": 100,
		"max_channels_per_connection": 1000, "max_presence_members": 1000}'),
	('enterprise', '{}');

UPDATE tenants SET plan = 'free' WHERE plan NOT IN (SELECT name FROM plans);
ALTER TABLE tenants ALTER COLUMN plan SET DEFAULT 'free';
ALTER TABLE tenants ADD CONSTRAINT tenants_plan_fkey FOREIGN KEY (plan) REFERENCES plans (name);

-- Every version of every app's policy is kept: a change inserts the next
-- version, so the history says who changed what and when, and the newest
-- row is the policy in force. An app without rows has the default policy
-- (Pusher's behaviour).
CREATE TABLE app_policies (
	app_id     text COLLATE "C" NOT NULL REFERENCES apps (id),
	version    bigint NOT NULL CHECK (version > 0),
	document   text NOT NULL,
	author     text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (app_id, version)
);
