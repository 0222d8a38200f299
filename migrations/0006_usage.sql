-- Usage per app, minute and node: nodes count in memory and add their
-- counts here every few seconds (never per message), so the console can
-- show messages today and charts, and billing can bill from it.
CREATE TABLE usage_minutes (
	app_id      text COLLATE "C" NOT NULL,
	minute      timestamptz NOT NULL CHECK (date_trunc('minute', minute) = minute),
	node        text COLLATE "C" NOT NULL,
	published   bigint NOT NULL DEFAULT 0 CHECK (published >= 0),
	delivered   bigint NOT NULL DEFAULT 0 CHECK (delivered >= 0),
	-- The node's open connections of the app when it last flushed in
	-- that minute.
	connections integer NOT NULL DEFAULT 0 CHECK (connections >= 0),
	PRIMARY KEY (app_id, minute, node)
);

CREATE INDEX usage_minutes_minute_idx ON usage_minutes (minute);
