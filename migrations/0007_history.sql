-- The history of durable channels (package services/history): a counter
-- row per channel and its events, until retention deletes them.
--
-- Ids compare byte by byte (COLLATE "C"), whatever the database's locale:
-- cheaper, and the order in which Trim walks channels.

-- The salt of every channel's epoch: 16 hex digits of
-- HMAC-SHA256(salt, app id NUL channel). A channel has its epoch before its
-- first event, the same on every node; a database whose history is lost
-- (a new one) has a new salt, so every channel gets a new epoch. Not a
-- secret: epochs are public.
CREATE TABLE history_salt (
	salt text NOT NULL,
	one  boolean PRIMARY KEY DEFAULT true CHECK (one)
);
INSERT INTO history_salt (salt) VALUES (md5(random()::text || clock_timestamp()::text));

-- One row per channel that ever had an event, never deleted, so that the
-- epoch stays. Every append updates it, and its row lock is what makes
-- sequence order commit order across nodes.
CREATE TABLE history_channels (
	app_id     text COLLATE "C" NOT NULL,
	channel    text COLLATE "C" NOT NULL,
	epoch      text NOT NULL CHECK (epoch ~ '^[0-9a-f]{16}$'),
	-- The channel's last sequence number.
	seq        bigint NOT NULL CHECK (seq > 0),
	-- The MaxEvents of the channel's latest append; 0: no limit.
	max_events bigint NOT NULL CHECK (max_events >= 0),
	PRIMARY KEY (app_id, channel)
) WITH (fillfactor = 50); -- room on each page for the updates to stay HOT

-- No foreign key to history_channels: the counter row is written by the
-- same statement, and the check would cost a lookup per event.
CREATE TABLE history_events (
	app_id     text COLLATE "C" NOT NULL,
	channel    text COLLATE "C" NOT NULL,
	seq        bigint NOT NULL CHECK (seq > 0),
	event      text NOT NULL,
	data       bytea NOT NULL,
	socket_id  text NOT NULL,
	user_id    text NOT NULL,
	-- When the event was committed, by the database's clock.
	time       timestamptz NOT NULL,
	-- time + the MaxAge of its append; NULL: no age limit.
	expires_at timestamptz,
	PRIMARY KEY (app_id, channel, seq)
);

-- Trim finds expired events by it.
CREATE INDEX history_events_expires_at_idx ON history_events (expires_at) WHERE expires_at IS NOT NULL;
