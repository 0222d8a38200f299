package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is everything a node is configured with, from flags and HERALD_*
// variables (a flag wins over its variable).
type Config struct {
	Addr            string
	Apps            string // JSON array of apps
	AppsFile        string
	ActivityTimeout time.Duration
	PongTimeout     time.Duration
	MaxFrameBytes   int
	QueueFrames     int
	QueueBytes      int
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
	PprofAddr       string

	DatabaseURL     string
	Migrate         bool
	MasterKey       string
	MasterKeys      string
	MasterKeyActive string
	RedisURL        string
	RedisPrefix     string
	ClusterKey      string
	NodeID          string
	PresenceTTL     time.Duration
	AdminToken      string
	TrustedProxies  string

	IPConnectionsPerMinute int
	IPRequestsPerSecond    int

	AdminEmail    string
	AdminPassword string
	SignUp        string

	SMTPAddr, SMTPFrom, SMTPUsername, SMTPPassword string

	AuditKey            string
	AuditAnchorInterval time.Duration

	HistoryTrimInterval time.Duration
}

// envFlags registers flags whose defaults come from HERALD_* variables and
// whose help names the variable.
type envFlags struct {
	fs  *flag.FlagSet
	err error
}

// newEnvFlags returns the flag set of command "herald name"; its help prints
// usage, then the flags.
func newEnvFlags(name, usage string) *envFlags {
	fs := flag.NewFlagSet("herald "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	return &envFlags{fs: fs}
}

// parse parses args and reports the first bad flag or HERALD_* value.
func (e *envFlags) parse(args []string) error {
	if err := e.fs.Parse(args); err != nil {
		return err
	}
	return e.err
}

func (e *envFlags) env(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	return v, ok && v != ""
}

func (e *envFlags) String(p *string, name, env, def, help string) {
	if v, ok := e.env(env); ok {
		def = v
	}
	e.fs.StringVar(p, name, def, help+" (env "+env+")")
}

func (e *envFlags) Duration(p *time.Duration, name, env string, def time.Duration, help string) {
	if v, ok := e.env(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			e.fail(fmt.Errorf("%s=%q: want a positive duration such as 30s", env, v))
		} else {
			def = d
		}
	}
	e.fs.DurationVar(p, name, def, help+" (env "+env+")")
}

func (e *envFlags) Int(p *int, name, env string, def int, help string) {
	if v, ok := e.env(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			e.fail(fmt.Errorf("%s=%q: want a positive whole number", env, v))
		} else {
			def = n
		}
	}
	e.fs.IntVar(p, name, def, help+" (env "+env+")")
}

func (e *envFlags) Bool(p *bool, name, env string, def bool, help string) {
	if v, ok := e.env(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.fail(fmt.Errorf("%s=%q: want true or false", env, v))
		} else {
			def = b
		}
	}
	e.fs.BoolVar(p, name, def, help+" (env "+env+")")
}

func (e *envFlags) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// register adds the serve flags, each with its HERALD_* variable.
func (c *Config) register(e *envFlags) {
	e.String(&c.Addr, "addr", "HERALD_ADDR", "127.0.0.1:6001", "address to listen on for WebSocket, REST API and health endpoints")
	e.String(&c.Apps, "apps", "HERALD_APPS", "", `apps as a JSON array of {"id","key","secret","name","enabled","settings","policy"}; no demo app is made when set`)
	e.String(&c.AppsFile, "apps-file", "HERALD_APPS_FILE", "", "file holding the apps JSON array (same shape as --apps)")
	e.Duration(&c.ActivityTimeout, "activity-timeout", "HERALD_ACTIVITY_TIMEOUT", 120*time.Second, "silence after which the server pings a client (sent to clients as activity_timeout)")
	e.Duration(&c.PongTimeout, "pong-timeout", "HERALD_PONG_TIMEOUT", 30*time.Second, "time a pinged client has to answer before it is closed with 4201")
	e.Int(&c.MaxFrameBytes, "max-frame-bytes", "HERALD_MAX_FRAME_BYTES", 32<<10, "largest inbound WebSocket frame; bigger frames close the connection with 1009")
	e.Int(&c.QueueFrames, "queue-frames", "HERALD_QUEUE_FRAMES", 1000, "unsent frames a connection may hold before it is closed as a slow consumer (4100)")
	e.Int(&c.QueueBytes, "queue-bytes", "HERALD_QUEUE_BYTES", 1<<20, "unsent bytes a connection may hold before it is closed as a slow consumer (4100)")
	e.Duration(&c.ShutdownTimeout, "shutdown-timeout", "HERALD_SHUTDOWN_TIMEOUT", 10*time.Second, "how long a stopping node waits for clients to leave")
	e.String(&c.LogLevel, "log-level", "HERALD_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	e.String(&c.LogFormat, "log-format", "HERALD_LOG_FORMAT", "text", "log format: text or json")
	e.String(&c.DatabaseURL, "database-url", "HERALD_DATABASE_URL", "", "PostgreSQL URL for tenants, apps and keys (in memory when empty)")
	e.Bool(&c.Migrate, "migrate", "HERALD_MIGRATE", false, "apply pending database migrations at start-up instead of refusing to start")
	e.String(&c.MasterKey, "master-key", "HERALD_MASTER_KEY", "", "base64 of 32 bytes that encrypt app secrets at rest (required with a database; prefer the variable)")
	e.String(&c.MasterKeys, "master-keys", "HERALD_MASTER_KEYS", "", "keyring for master key rotation: kid:base64,kid:base64 (instead of --master-key)")
	e.String(&c.MasterKeyActive, "master-key-active", "HERALD_MASTER_KEY_ACTIVE", "", "the kid of --master-keys that encrypts new secrets")
	e.String(&c.RedisURL, "redis-url", "HERALD_REDIS_URL", "", "Redis URL for the backplane, presence and cluster counts (one node in memory when empty)")
	e.String(&c.RedisPrefix, "redis-prefix", "HERALD_REDIS_PREFIX", "herald", "prefix of every Redis key and channel, so deployments can share a Redis")
	e.String(&c.ClusterKey, "cluster-key", "HERALD_CLUSTER_KEY", "", "secret that authenticates messages between nodes on Redis (recommended when Redis is shared)")
	e.String(&c.NodeID, "node-id", "HERALD_NODE_ID", "", "this node's name in the cluster (random when empty)")
	e.Duration(&c.PresenceTTL, "presence-ttl", "HERALD_PRESENCE_TTL", 30*time.Second, "how long a dead node's presence members and counts survive in Redis")
	e.String(&c.AdminToken, "admin-token", "HERALD_ADMIN_TOKEN", "", "operator token for the management API /v1 (off when empty; prefer the variable)")
	e.String(&c.TrustedProxies, "trusted-proxies", "HERALD_TRUSTED_PROXIES", "", "comma-separated IPs or CIDRs of load balancers whose X-Forwarded-For names the client (none: the peer is the client)")
	e.Int(&c.IPConnectionsPerMinute, "ip-connections-per-minute", "HERALD_IP_CONNECTIONS_PER_MINUTE", 1200, "new WebSocket connections per client IP per minute across the cluster, refused with 429 before the upgrade (0: unlimited; raise it for load tests from one address)")
	e.Int(&c.IPRequestsPerSecond, "ip-requests-per-second", "HERALD_IP_REQUESTS_PER_SECOND", 10000, "REST API requests per client IP per second across the cluster, counted before the signature check and refused with 429 (0: unlimited); above every plan's publish rate, so a tenant backend on one address is held to its plan, not to this")
	e.String(&c.AdminEmail, "admin-email", "HERALD_ADMIN_EMAIL", "", "email of the first console platform admin, made when there are no console users (default admin@localhost)")
	e.String(&c.AdminPassword, "admin-password", "HERALD_ADMIN_PASSWORD", "", "password of that first admin (generated and printed once when empty; prefer the variable)")
	e.String(&c.SignUp, "signup", "HERALD_SIGNUP", "off", "console self-service sign-up: off, invite (accounts only through invite links) or open (anyone creates a tenant on the free plan with its first app)")
	e.String(&c.SMTPAddr, "smtp-addr", "HERALD_SMTP_ADDR", "", "SMTP server (host:port) the console emails invite links through; off when empty (owners pass links on themselves)")
	e.String(&c.SMTPFrom, "smtp-from", "HERALD_SMTP_FROM", "", "sender address of the console's email")
	e.String(&c.SMTPUsername, "smtp-username", "HERALD_SMTP_USERNAME", "", "SMTP user (optional; sent only over TLS or to localhost)")
	e.String(&c.SMTPPassword, "smtp-password", "HERALD_SMTP_PASSWORD", "", "SMTP password (prefer the variable)")
	e.String(&c.AuditKey, "audit-key", "HERALD_AUDIT_KEY", "", "base64 Ed25519 seed (32 bytes) that signs the audit chains' heads (anchors); `herald audit keygen` makes one. Keep it outside the database")
	e.Duration(&c.AuditAnchorInterval, "audit-anchor-interval", "HERALD_AUDIT_ANCHOR_INTERVAL", time.Hour, "how often the audit chains' heads are signed, when --audit-key is set")
	e.Duration(&c.HistoryTrimInterval, "history-trim-interval", "HERALD_HISTORY_TRIM_INTERVAL", time.Minute, "how often the node removes durable channels' events past their retention (max_events, max_age)")
	e.String(&c.PprofAddr, "pprof-addr", "HERALD_PPROF_ADDR", "", "loopback address for Go's pprof profiler (off when empty; never expose it)")
}

// Logger builds the configured logger, writing to stderr.
func (c *Config) Logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.LogFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", c.LogFormat)
}
