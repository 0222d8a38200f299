package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/api"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/gateway"
	"github.com/heraldrt/herald/tenants"
	"github.com/heraldrt/herald/web"
)

// Main is one Herald process: Run starts it, Close stops it in order. Tests
// boot it on 127.0.0.1:0.
type Main struct {
	Config Config
	Log    *slog.Logger

	// Set by Run.
	Addr    string       // the address actually listened on
	DemoApp *tenants.App // the app created when none were configured
	// FirstAdmin is the console admin made at this start, when there were
	// no console users; its Password is set only if it was generated.
	FirstAdmin *firstAdmin

	apps     tenants.Store
	policies *authz.Policies
	debugKey []byte // signs debug-stream tokens
	backends *backends
	broker   broker.Broker
	node     *gateway.Node
	http     *fiber.App
	ln       net.Listener
	served   chan error

	pprof *http.Server

	stopAnchors chan struct{}
	anchorsDone chan struct{}

	stopUsage context.CancelFunc
	usageDone chan struct{}

	stopRetention context.CancelFunc
	retentionDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Run loads the apps, starts the node and begins serving. It returns once
// the listener is open.
func (m *Main) Run(ctx context.Context) error {
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	if m.Config.SMTPAddr != "" && m.Config.SMTPFrom == "" {
		return fmt.Errorf("HERALD_SMTP_FROM is required with HERALD_SMTP_ADDR")
	}
	switch m.Config.SignUp {
	case "", web.SignUpOff, web.SignUpInvite, web.SignUpOpen:
	default:
		return fmt.Errorf("HERALD_SIGNUP must be off, invite or open, not %q", m.Config.SignUp)
	}
	var err error
	m.backends, err = openBackends(ctx, &m.Config, m.Log)
	if err != nil {
		return err
	}
	m.apps = m.backends.apps
	apps, policies, err := m.loadApps()
	if err != nil {
		return err
	}
	// The demo app (and its printed secret) exists only in embedded mode.
	if len(apps) == 0 && m.Config.DatabaseURL == "" {
		m.DemoApp = tenants.NewApp("Demo app")
		// So that the demo shows resume on reconnect too.
		m.DemoApp.Settings.Durable = []tenants.DurableRule{{Pattern: "durable-*"}}
		if err := m.DemoApp.Validate(); err != nil {
			return err
		}
		apps = append(apps, m.DemoApp)
	}
	if err := tenants.PutApps(ctx, m.apps, apps); err != nil {
		return err
	}
	if err := putPolicies(ctx, m.backends.policies, policies); err != nil {
		return err
	}
	if m.FirstAdmin, err = bootstrapAdmin(ctx, m.backends.users, m.Config.AdminEmail, m.Config.AdminPassword); err != nil {
		return err
	}

	proxies, err := gateway.ParseProxies(m.Config.TrustedProxies)
	if err != nil {
		return fmt.Errorf("HERALD_TRUSTED_PROXIES: %w", err)
	}
	m.broker = m.backends.broker
	m.policies = authz.NewPolicies(m.backends.policies, 0)
	deps := gateway.Deps{Apps: m.apps, Broker: m.broker, Presence: m.backends.presence,
		Occupancy: m.backends.occupancy, Connections: m.backends.conns, Policies: m.policies,
		Limiter: m.backends.limiter, Plans: m.backends.plans, History: m.backends.history, Log: m.Log}
	if m.backends.cache != nil {
		deps.Invalidate = m.backends.cache.Invalidate
	}
	// Every node must sign debug-stream tokens alike: with the cluster key
	// when there is one, else with a key of this process (one node).
	m.debugKey = []byte(m.Config.ClusterKey)
	if len(m.debugKey) == 0 {
		m.debugKey = make([]byte, 32)
		if _, err := rand.Read(m.debugKey); err != nil {
			return err
		}
	}
	m.node, err = gateway.NewNode(gateway.Config{
		ActivityTimeout:  m.Config.ActivityTimeout,
		PongTimeout:      m.Config.PongTimeout,
		MaxFrameBytes:    m.Config.MaxFrameBytes,
		QueueFrames:      m.Config.QueueFrames,
		QueueBytes:       m.Config.QueueBytes,
		PresenceInterval: m.Config.PresenceTTL / 3,
		TrustedProxies:   proxies,

		IPConnectionsPerMinute: m.Config.IPConnectionsPerMinute,
		DebugKey:               m.debugKey,
	}, deps)
	if err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}

	m.http = fiber.New(fiber.Config{
		AppName:               "herald",
		DisableStartupMessage: true,
		ErrorHandler:          api.ErrorHandler,
		BodyLimit:             256 << 10,
		ReadBufferSize:        8 << 10, // also bounds request headers
		ReadTimeout:           10 * time.Second,
		WriteTimeout:          10 * time.Second,
		IdleTimeout:           60 * time.Second,
		UnescapePath:          true,
		// Hand the request buffer back before a WebSocket upgrade, or
		// every connection would hold 8 KiB for its whole life.
		ReduceMemoryUsage: true,
	})
	m.routes()

	if err := m.startAnchors(); err != nil {
		return err
	}
	m.startUsage()
	m.startRetention()
	// The profiler starts first: once the main listener serves, a failed
	// start would leave Close racing fasthttp's start-up.
	if m.Config.PprofAddr != "" {
		if err := m.servePprof(); err != nil {
			return err
		}
	}
	m.ln, err = net.Listen("tcp", m.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.Config.Addr, err)
	}
	m.Addr = m.ln.Addr().String()
	m.served = make(chan error, 1)
	go func() { m.served <- m.http.Listener(m.ln) }()
	m.Log.Info("listening", "addr", m.Addr, "apps", len(apps))
	return nil
}

// servePprof serves the profiler on its own loopback listener, never on the
// public one.
func (m *Main) servePprof() error {
	host, _, err := net.SplitHostPort(m.Config.PprofAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("pprof address %q must be a loopback address such as 127.0.0.1:6060", m.Config.PprofAddr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m.pprof = &http.Server{Addr: m.Config.PprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", m.Config.PprofAddr)
	if err != nil {
		return fmt.Errorf("pprof listener: %w", err)
	}
	go func() { _ = m.pprof.Serve(ln) }()
	return nil
}

// routes lists every route of the node.
func (m *Main) routes() {
	m.http.Get("/app/:key", m.node.WebSocketHandler())
	m.node.FallbackRoutes(m.http)
	m.http.Get("/app/:key/sse", m.node.SSEHandler())
	m.http.Get("/app/:key/channels/:channel/events", m.node.HistoryHandler())
	api.HealthRoutes(m.http, m.node, m.backends.checks, m.backends.metrics)
	rest := api.New(m.apps, m.node, m.Log)
	rest.AdminToken = m.Config.AdminToken
	rest.Limiter = m.backends.limiter
	rest.Manager.Plans, rest.Manager.Policies, rest.Manager.Audit, rest.Manager.Limiter = m.backends.plans, m.policies, m.backends.audit, m.backends.limiter
	rest.Manager.Users = m.backends.users
	rest.IPRequestsPerSecond, rest.TrustedProxies = m.Config.IPRequestsPerSecond, m.node.Config().TrustedProxies
	rest.ManageRoutes(m.http)
	rest.Routes(m.http)
	console := &web.Console{Users: m.backends.users, Apps: m.apps, Manager: rest.Manager, DebugKey: m.debugKey, Usage: m.backends.usage, SignUp: m.Config.SignUp, RBAC: authz.NewConsoleRBAC(), Audit: m.backends.audit,
		Limiter: m.backends.limiter, Proxies: m.node.Config().TrustedProxies, Log: m.Log}
	if m.Config.SMTPAddr != "" {
		console.Mailer = &web.SMTPMailer{Addr: m.Config.SMTPAddr, From: m.Config.SMTPFrom,
			Username: m.Config.SMTPUsername, Password: m.Config.SMTPPassword}
	}
	console.Routes(m.http)
	web.Routes(m.http)
}

// startRetention removes durable channels' events past their retention
// every HistoryTrimInterval. Every node does it; the deletes are
// idempotent, so nodes doing it at once only repeat a little work.
func (m *Main) startRetention() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stopRetention, m.retentionDone = cancel, make(chan struct{})
	go func() {
		defer close(m.retentionDone)
		t := time.NewTicker(max(m.Config.HistoryTrimInterval, time.Second))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				removed, err := m.backends.history.Trim(ctx, now)
				if err != nil && ctx.Err() == nil {
					m.Log.Warn("durable channels: enforcing retention failed", "err", err)
				} else if removed > 0 {
					m.Log.Debug("durable channels: events past retention removed", "events", removed)
				}
			}
		}
	}()
}

// startUsage adds the node's usage to the usage store every 10 s.
func (m *Main) startUsage() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stopUsage, m.usageDone = cancel, make(chan struct{})
	f := &billing.Flusher{Meter: m.node.Meter(), Store: m.backends.usage, Node: m.backends.node, Log: m.Log}
	go func() {
		defer close(m.usageDone)
		f.Run(ctx)
	}()
}

// startAnchors signs the audit chains' heads every AuditAnchorInterval
// when an audit key is configured (security.md AUD-2).
func (m *Main) startAnchors() error {
	if m.Config.AuditKey == "" {
		return nil
	}
	seed, err := base64.StdEncoding.DecodeString(m.Config.AuditKey)
	if err != nil || len(seed) != ed25519.SeedSize {
		return fmt.Errorf("HERALD_AUDIT_KEY must be the base64 of a %d-byte Ed25519 seed (herald audit keygen makes one)", ed25519.SeedSize)
	}
	store, ok := m.backends.audit.(audit.AnchorStore)
	if !ok {
		return fmt.Errorf("the audit log cannot store anchors")
	}
	key := ed25519.NewKeyFromSeed(seed)
	interval := max(m.Config.AuditAnchorInterval, time.Second)
	m.stopAnchors, m.anchorsDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(m.anchorsDone)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-m.stopAnchors:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			n, err := audit.AnchorHeads(ctx, m.backends.audit, store, key)
			cancel()
			if err != nil {
				m.Log.Error("audit anchoring failed", "err", err)
			} else if n > 0 {
				m.Log.Info("audit chains anchored", "anchors", n)
			}
		}
	}()
	return nil
}

// firstAdmin is the console admin bootstrapAdmin made.
type firstAdmin struct {
	Email    string
	Password string // only when generated: shown once
}

// bootstrapAdmin makes the first platform admin when there are no console
// users: from email and password if given, else admin@localhost with a
// generated password that the banner shows once.
func bootstrapAdmin(ctx context.Context, users tenants.Users, email, password string) (*firstAdmin, error) {
	existing, err := users.ListUsers(ctx)
	if err != nil || len(existing) > 0 {
		return nil, err
	}
	made := &firstAdmin{Email: email}
	if made.Email == "" {
		made.Email = "admin@localhost"
	}
	if password == "" {
		password = generatePassword()
		made.Password = password
	}
	hash, err := authz.HashPassword(password)
	if err != nil {
		return nil, fmt.Errorf("HERALD_ADMIN_PASSWORD: %w", err)
	}
	u := tenants.NewUser(made.Email, hash)
	u.PlatformAdmin = true
	if err := users.CreateUser(ctx, u); err != nil {
		// Two nodes starting at once both see no users; one wins.
		if errors.Is(err, tenants.ErrConflict) {
			return nil, nil
		}
		return nil, fmt.Errorf("first console admin: %w", err)
	}
	return made, nil
}

// generatePassword returns 120 random bits as 20 URL-safe characters.
func generatePassword() string {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// loadApps reads the configured apps and their channel policies, checking
// every policy before anything is stored.
func (m *Main) loadApps() ([]*tenants.App, map[string]string, error) {
	var sources [][]byte
	if m.Config.Apps != "" {
		sources = append(sources, []byte(m.Config.Apps))
	}
	if m.Config.AppsFile != "" {
		b, err := os.ReadFile(m.Config.AppsFile)
		if err != nil {
			return nil, nil, fmt.Errorf("apps file: %w", err)
		}
		sources = append(sources, b)
	}
	var apps []*tenants.App
	policies := map[string]string{}
	ids := map[string]bool{}
	for _, src := range sources {
		parsed, docs, err := tenants.ParseAppConfigs(src)
		if err != nil {
			return nil, nil, err
		}
		// ParseAppConfigs checks one source; an id given in both would
		// otherwise silently replace the first app.
		for _, a := range parsed {
			if ids[a.ID] {
				return nil, nil, fmt.Errorf("app id %q is configured in both --apps and --apps-file", a.ID)
			}
			ids[a.ID] = true
		}
		for id, doc := range docs {
			if _, err := authz.ParsePolicy(doc); err != nil {
				return nil, nil, fmt.Errorf("apps: app %s: policy %w", id, err)
			}
			policies[id] = doc
		}
		apps = append(apps, parsed...)
	}
	return apps, policies, nil
}

// putPolicies makes the configured policies the apps' policies in force,
// adding a version only where the document differs, so restarts and nodes
// starting together do not pile up versions.
func putPolicies(ctx context.Context, store authz.PolicyStore, policies map[string]string) error {
	for id, doc := range policies {
		cur, err := store.Current(ctx, id)
		if err != nil {
			return fmt.Errorf("app %s: policy: %w", id, err)
		}
		if cur.Document == doc {
			continue
		}
		if _, err := store.Replace(ctx, id, doc, "config"); err != nil {
			return fmt.Errorf("app %s: policy: %w", id, err)
		}
	}
	return nil
}

// Close stops the node in order: clients are asked to reconnect elsewhere,
// then the listener and the broker close. Calling it again returns the
// first call's result.
func (m *Main) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Main) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	var errs []error
	if m.node != nil {
		if err := m.node.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain: %w", err))
		}
	}
	if m.http != nil {
		if err := m.http.ShutdownWithContext(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		if m.served != nil { // nil when Run failed before serving
			// fasthttp's Shutdown misses a Serve that has not registered
			// its listener yet (a Close right after Run); closing the
			// listener ends that Serve too.
			_ = m.ln.Close()
			<-m.served
		}
	}
	if m.stopAnchors != nil {
		close(m.stopAnchors)
		<-m.anchorsDone
	}
	if m.stopUsage != nil {
		m.stopUsage() // flushes once more
		<-m.usageDone
	}
	if m.stopRetention != nil {
		m.stopRetention()
		<-m.retentionDone
	}
	if m.broker != nil {
		errs = append(errs, m.broker.Close())
	}
	if m.pprof != nil {
		errs = append(errs, m.pprof.Close())
	}
	if m.backends != nil {
		m.backends.close()
	}
	return errors.Join(errs...)
}
