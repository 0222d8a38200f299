package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/migrations"
	"github.com/heraldrt/herald/services/api"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/history"
	"github.com/heraldrt/herald/services/presence"
	"github.com/heraldrt/herald/tenants"
)

// backends are the stores a node runs on: memory by default, PostgreSQL and
// Redis when their URLs are set.
type backends struct {
	apps      tenants.Store
	cache     *tenants.Cache // nil without a database
	broker    broker.Broker
	presence  presence.Store
	occupancy presence.Occupancy
	conns     presence.Occupancy // connection quotas
	policies  authz.PolicyStore
	plans     billing.Plans
	limiter   *authz.Limiter
	audit     audit.Log
	users     tenants.Users
	usage     billing.UsageStore
	history   history.Store
	node      string // this node's id in the cluster
	checks    map[string]api.Check
	metrics   func(*strings.Builder) // the backends' own counters, or nil
	closers   []func()
}

func (b *backends) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
}

func openBackends(ctx context.Context, cfg *Config, log *slog.Logger) (*backends, error) {
	b := &backends{checks: map[string]api.Check{}, node: cfg.NodeID}
	if b.node == "" {
		b.node = randomNodeID()
	}
	if cfg.DatabaseURL == "" {
		b.apps = tenants.NewMemoryStore()
		b.policies = authz.NewMemoryPolicies()
		b.plans = billing.NewMemoryPlans()
		b.audit = audit.NewMemoryLog()
		b.users = tenants.NewMemoryUsers(b.apps)
		b.usage = billing.NewMemoryUsage()
		b.history = history.NewMemory()
		if cfg.Migrate {
			return b, fmt.Errorf("--migrate needs a database: set HERALD_DATABASE_URL")
		}
	} else {
		pool, err := openPool(ctx, cfg.DatabaseURL)
		if err != nil {
			return b, err
		}
		b.closers = append(b.closers, pool.Close)
		keys, err := tenants.ParseKeyring(cfg.MasterKey, cfg.MasterKeys, cfg.MasterKeyActive)
		if err != nil {
			return b, err
		}
		if err := checkSchema(ctx, pool, cfg.Migrate); err != nil {
			return b, err
		}
		pg := tenants.NewPostgresStore(pool, keys)
		if err := pg.CheckKeyring(ctx); err != nil {
			return b, err
		}
		b.cache = tenants.NewCache(pg, tenants.DefaultCacheTTL)
		b.apps = b.cache
		b.policies = authz.NewPostgresPolicies(pool)
		b.plans = billing.NewPostgresPlans(pool, 0)
		b.audit = audit.NewPostgresLog(pool)
		b.users = tenants.NewPostgresUsers(pool)
		b.usage = billing.NewPostgresUsage(pool)
		hist := history.NewPostgres(pool, history.PostgresOptions{Log: log})
		b.history = hist
		b.closers = append(b.closers, func() { _ = hist.Close() })
		b.checks["postgres"] = func(ctx context.Context) error {
			if err := pool.Ping(ctx); err != nil {
				return fmt.Errorf("postgres unreachable: %v", err)
			}
			return nil
		}
	}
	if cfg.RedisURL == "" {
		b.broker = broker.NewMemory()
		b.presence = presence.NewMemory()
		b.occupancy = presence.NewMemoryOccupancy()
		b.conns = presence.NewMemoryOccupancy()
		b.limiter = authz.NewLimiter(authz.LimiterOptions{Log: log})
	} else {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return b, fmt.Errorf("HERALD_REDIS_URL: %v", redactURLError(err))
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
		// Honour each call's deadline; never resend a PUBLISH (a retry after
		// a lost reply would deliver twice); fail fast while Redis is down.
		opts.ContextTimeoutEnabled = true
		opts.MaxRetries = -1
		opts.DialerRetries = 1
		client := redis.NewClient(opts)
		b.closers = append(b.closers, func() { _ = client.Close() })
		node := b.node
		rb := broker.NewRedis(client, broker.RedisOptions{Prefix: cfg.RedisPrefix, ClusterKey: []byte(cfg.ClusterKey), Log: log})
		b.broker = rb
		b.presence = presence.NewRedis(client, presence.RedisPresenceOptions{Prefix: cfg.RedisPrefix, TTL: cfg.PresenceTTL})
		occ, err := presence.NewRedisOccupancy(client, presence.OccupancyOptions{Prefix: cfg.RedisPrefix, NodeID: node, TTL: cfg.PresenceTTL, Log: log})
		if err != nil {
			return b, err
		}
		b.closers = append(b.closers, func() { _ = occ.Close() })
		b.occupancy = occ
		conns, err := presence.NewRedisOccupancy(client, presence.OccupancyOptions{Prefix: cfg.RedisPrefix, NodeID: node, TTL: cfg.PresenceTTL, Log: log, Kind: "conns"})
		if err != nil {
			return b, err
		}
		b.closers = append(b.closers, func() { _ = conns.Close() })
		b.conns = conns
		b.limiter = authz.NewLimiter(authz.LimiterOptions{Redis: client, Prefix: cfg.RedisPrefix, Log: log})
		b.checks["redis"] = rb.Ready
		b.metrics = func(w *strings.Builder) {
			st := rb.Stats()
			fmt.Fprintf(w, "# HELP herald_backplane_dropped_total Backplane messages dropped as forged or malformed.\n# TYPE herald_backplane_dropped_total counter\nherald_backplane_dropped_total %d\n", st.DroppedEnvelopes)
			fmt.Fprintf(w, "# HELP herald_backplane_reconnects_total Times the backplane reconnected to Redis and resubscribed.\n# TYPE herald_backplane_reconnects_total counter\nherald_backplane_reconnects_total %d\n", st.Reconnects)
		}
	}
	return b, nil
}

func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("HERALD_DATABASE_URL: %v", redactURLError(err))
	}
	// Request paths never wait long on the database.
	pc.ConnConfig.RuntimeParams["statement_timeout"] = "5000"
	pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "10000"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %v", redactURLError(err))
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %v", redactURL(url), redactURLError(err))
	}
	return pool, nil
}

// checkSchema refuses to serve on an out-of-date schema, or migrates when
// asked to.
func checkSchema(ctx context.Context, pool *pgxpool.Pool, migrate bool) error {
	if migrate {
		_, err := migrations.Apply(ctx, pool)
		return err
	}
	pending, err := migrations.Pending(ctx, pool)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("the database schema is out of date (%d migrations pending: %s): run `herald migrate`, or start with --migrate", len(pending), strings.Join(pending, ", "))
	}
	return nil
}

func randomNodeID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "n" + hex.EncodeToString(b)
}

// redactURL hides a URL's password for logs and errors; an unparsable URL
// is hidden entirely (SEC-3).
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "<redacted>"
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = "<credentials>@" + rest[at+1:]
	}
	return scheme + "://" + rest
}

// redactURLError keeps a driver's error from echoing a URL with its
// password.
func redactURLError(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "://") {
		return "invalid URL"
	}
	return msg
}
