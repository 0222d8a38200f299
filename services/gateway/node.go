package gateway

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"log/slog"
	"maps"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/history"
	"github.com/heraldrt/herald/services/presence"
	"github.com/heraldrt/herald/services/protocol"
	"github.com/heraldrt/herald/tenants"
)

// Config tunes a Node. A zero field means the default in its comment.
type Config struct {
	// ActivityTimeout is sent to clients as activity_timeout; after that
	// long without a frame from a client the server pings it. Default 120 s.
	ActivityTimeout time.Duration
	// PongTimeout is how long a pinged client has to answer before it is
	// closed with 4201. Default 30 s.
	PongTimeout time.Duration
	// QueueFrames and QueueBytes bound a connection's unsent frames; over
	// either the client is closed with 4100. Defaults 1000 and 1 MiB.
	QueueFrames int
	QueueBytes  int
	// MaxFrameBytes is the read limit for one inbound frame; a bigger frame
	// closes the connection with 1009. Default 32 KiB.
	MaxFrameBytes int
	// BrokerTimeout bounds each broker and presence call. Default 2 s.
	BrokerTimeout time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For names the client.
	// Default none: the peer is the client.
	TrustedProxies Proxies
	// PresenceInterval is how often the node renews its presence entries
	// and looks for members of dead nodes. Keep it well below the presence
	// store's TTL. Default 10 s.
	PresenceInterval time.Duration
	// IPConnectionsPerMinute bounds new WebSocket connections per client
	// IP across the cluster, before the upgrade (HTTP 429). 0: unlimited.
	IPConnectionsPerMinute int
	// DebugKey signs the tokens that open apps' debug streams (DebugToken);
	// every node of a cluster needs the same. Empty: no debug stream.
	DebugKey []byte
	// ReorderWait is how long an event of a durable channel that arrived
	// before the events it follows waits for them before the node reads
	// them from the log. Default 50 ms.
	ReorderWait time.Duration
	// DurableCheckInterval is how often the node compares the log's heads
	// with what it delivered; a channel behind for two checks in a row is
	// repaired from the log. Default 1 s.
	DurableCheckInterval time.Duration
	// SSEHeartbeat is how often an SSE stream gets a comment line, which
	// keeps proxies from closing it and detects a gone client; at most
	// half the activity timeout. Default 15 s.
	SSEHeartbeat time.Duration
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ActivityTimeout, 120*time.Second)
	def(&c.PongTimeout, 30*time.Second)
	def(&c.BrokerTimeout, 2*time.Second)
	def(&c.PresenceInterval, 10*time.Second)
	def(&c.ReorderWait, 50*time.Millisecond)
	def(&c.DurableCheckInterval, time.Second)
	def(&c.SSEHeartbeat, 15*time.Second)
	defInt(&c.QueueFrames, 1000)
	defInt(&c.QueueBytes, 1<<20)
	defInt(&c.MaxFrameBytes, 32<<10)
}

// Node is one gateway: it owns the local connections and the hub, and is the
// broker's Handler.
type Node struct {
	cfg      Config
	log      *slog.Logger
	apps     tenants.Store
	broker   broker.Broker
	presence presence.Store
	occupied presence.Occupancy
	conns    presence.Occupancy // connection quotas: "app" and "user:<id>" per app
	policies *authz.Policies
	limiter  *authz.Limiter
	plans    billing.Plans
	meter    *billing.Meter
	events   EventSink
	history  history.Store
	debug    debugState
	hub      *hub
	flushers []*flusher
	nextFl   atomic.Uint32

	mu        sync.Mutex                                // guards clients, users and presences
	clients   map[*Client]struct{}                      // every open connection
	users     map[userKey]map[*Client]struct{}          // signed-in connections by user
	presences map[channelKey]map[string]presence.Member // local presence members by channel and connection id

	durMu    sync.Mutex
	durables map[channelKey]*durableChannel // durable channels with local subscribers

	invalidate func(appID string)

	slowConsumers atomic.Uint64
	panics        atomic.Uint64
	// backplaneMissed counts committed durable events the backplane
	// refused; missWarned is the Unix second of the last warning.
	backplaneMissed                 atomic.Uint64
	missWarned                      atomic.Int64
	repairs, resumes, resumesFailed atomic.Uint64
	closing                         atomic.Bool
	stop                            chan struct{}
	sweeperDone                     chan struct{}
	presenceDone                    chan struct{}
	headsDone                       chan struct{}
}

type userKey struct{ appID, userID string }

// Deps are a Node's backends.
type Deps struct {
	Apps     tenants.Store
	Broker   broker.Broker
	Presence presence.Store
	// Occupancy counts subscriptions across the cluster; nil: this node's
	// own counts (one node).
	Occupancy presence.Occupancy
	// Connections counts connections per app and per user across the
	// cluster for the quotas; nil: this node's own counts (one node).
	Connections presence.Occupancy
	// Policies serves the apps' channel policies; nil: every app has the
	// default policy (Pusher's behaviour).
	Policies *authz.Policies
	// Limiter applies the rate limits; nil: a memory limiter (one node).
	Limiter *authz.Limiter
	// Plans bound the apps' limits; nil: the default plans.
	Plans billing.Plans
	// Invalidate, when set, is called with an app id before the node
	// re-checks that app's connections after a change announced by any
	// node (the app cache drops its copies there).
	Invalidate func(appID string)
	Meter      *billing.Meter
	Events     EventSink // nil: none
	// History is the log of durable channels; nil: an in-memory log (one
	// node).
	History history.Store
	Log     *slog.Logger
}

var _ broker.Handler = (*Node)(nil)

// NewNode returns a running node: it registers with the broker and starts
// the liveness sweeper. Close stops it.
func NewNode(cfg Config, d Deps) (*Node, error) {
	cfg.setDefaults()
	n := &Node{
		cfg: cfg, log: d.Log, apps: d.Apps, broker: d.Broker, presence: d.Presence, occupied: d.Occupancy,
		conns: d.Connections, policies: d.Policies, limiter: d.Limiter, plans: d.Plans, meter: d.Meter, events: d.Events, hub: newHub(), invalidate: d.Invalidate,
		clients: map[*Client]struct{}{}, users: map[userKey]map[*Client]struct{}{},
		presences: map[channelKey]map[string]presence.Member{}, history: d.History, durables: map[channelKey]*durableChannel{},
		stop: make(chan struct{}), sweeperDone: make(chan struct{}), presenceDone: make(chan struct{}), headsDone: make(chan struct{}),
	}
	if n.events == nil {
		n.events = noEvents{}
	}
	// Flushers never block, so each can keep a CPU busy: leave half of
	// them to the readers, the API and the broker.
	for range max(1, runtime.GOMAXPROCS(0)/2) {
		n.flushers = append(n.flushers, newFlusher())
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.meter == nil {
		n.meter = &billing.Meter{}
	}
	if n.occupied == nil {
		n.occupied = presence.NewMemoryOccupancy()
	}
	if n.conns == nil {
		n.conns = presence.NewMemoryOccupancy()
	}
	if n.policies == nil {
		n.policies = authz.NewPolicies(authz.NewMemoryPolicies(), 0)
	}
	if n.limiter == nil {
		n.limiter = authz.NewLimiter(authz.LimiterOptions{Log: n.log})
	}
	if n.plans == nil {
		n.plans = billing.NewMemoryPlans()
	}
	if n.history == nil {
		n.history = history.NewMemory()
	}
	if err := n.broker.Run(n); err != nil {
		return nil, err
	}
	go n.sweep()
	go n.every(n.cfg.PresenceInterval, n.presenceDone, n.keepPresence)
	go n.every(n.cfg.DurableCheckInterval, n.headsDone, n.checkHeads)
	return n, nil
}

// Config returns the node's configuration with defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// HandlePublication encodes pub once and enqueues the same bytes to every
// local subscriber of the channel. Events of durable channels go through
// the channel's ordering (see durable.go).
func (n *Node) HandlePublication(appID, channel string, pub *broker.Publication) {
	if pub.Seq > 0 {
		n.handleDurable(appID, channel, pub)
		return
	}
	frame := protocol.AppendEvent(make([]byte, 0, 64+len(pub.Event)+len(channel)+len(pub.Data)+len(pub.Data)/8),
		pub.Event, channel, pub.Data, pub.UserID)
	delivered := n.hub.broadcast(appID, channel, frame, pub.ExcludeSocketID)
	n.meter.Delivered(appID, delivered)
}

// HandleControl carries out a control message from any node.
func (n *Node) HandleControl(c broker.Control) {
	switch c.Kind {
	case broker.TerminateUser:
		n.mu.Lock()
		conns := make([]*Client, 0, len(n.users[userKey{c.AppID, c.UserID}]))
		for cl := range n.users[userKey{c.AppID, c.UserID}] {
			conns = append(conns, cl)
		}
		n.mu.Unlock()
		for _, cl := range conns {
			cl.Enqueue(protocol.AppendError(nil, protocol.CodeUnauthorized, "connection terminated by the app"))
			cl.Close(protocol.CodeUnauthorized, "terminated by the app")
		}
	case broker.InvalidateApp:
		if n.invalidate != nil {
			n.invalidate(c.AppID)
		}
		n.policies.Invalidate(c.AppID)
		// The re-check reads the store, which may mean a database round
		// trip; the broker's delivery goroutine must not wait for it.
		go n.recheckApp(c.AppID)
	}
}

// recheckApp applies a change to an app to its open connections: all are
// closed if the app is gone, disabled or its tenant suspended (4003), those
// that connected with a key that was revoked are asked to reconnect (4200),
// which then fails for the old key, and subscriptions that the app's
// channel policy no longer allows are ended. New settings apply to new
// connections.
func (n *Node) recheckApp(appID string) {
	ctx, cancel := n.bounded(context.Background())
	defer cancel()
	app, err := n.apps.AppByID(ctx, appID)
	if err != nil && !errors.Is(err, tenants.ErrNotFound) {
		n.log.Error("app lookup after invalidation failed", "app", appID, "err", err)
		return
	}
	n.mu.Lock()
	var affected []*Client
	for c := range n.clients {
		if c.app.ID == appID {
			affected = append(affected, c)
		}
	}
	n.mu.Unlock()
	for _, c := range affected {
		switch {
		case app == nil || !app.Active():
			c.Enqueue(protocol.AppendError(nil, protocol.CodeAppDisabled, "app is disabled"))
			c.Close(protocol.CodeAppDisabled, "app is disabled")
		case !hasKey(app, c.key):
			c.Close(protocol.CodeReconnect, "the app key of this connection was revoked")
		}
	}
	if app == nil || !app.Active() || len(affected) == 0 {
		return
	}
	policy, err := n.policies.For(ctx, appID)
	if err != nil {
		n.log.Error("policy lookup after invalidation failed", "app", appID, "err", err)
		return
	}
	for _, c := range affected {
		n.recheckSubscriptions(c, policy)
	}
}

func hasKey(app *tenants.App, key string) bool {
	_, ok := app.SecretFor(key)
	return ok
}

// InvalidateApp tells every node that an app, its keys or its tenant
// changed.
func (n *Node) InvalidateApp(ctx context.Context, appID string) error {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	return n.broker.PublishControl(ctx, broker.Control{Kind: broker.InvalidateApp, AppID: appID})
}

// Outgoing is one event for one channel, from the app's backend or an
// operator.
type Outgoing struct {
	Channel string
	Pub     broker.Publication
}

// ErrLogUnavailable is returned by Publish when events for durable channels
// could not be committed: nothing was published.
var ErrLogUnavailable = errors.New("the event log of durable channels is unavailable")

// Publish publishes events of app. Events for ephemeral channels go to
// the backplane first, in order, and fail with its error; only then are
// events for the app's durable channels committed to the log, all in one
// group commit, each getting its channel's next sequence number, and sent
// to the backplane in order. So a request that fails has committed
// nothing, and a backend may retry it without logging an event twice. A
// committed event counts as published even if the backplane refuses it:
// the nodes with subscribers read it from the log.
func (n *Node) Publish(ctx context.Context, app *tenants.App, out []Outgoing) error {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	var appends []history.Append
	var logged []int // indexes in out of the events in appends
	for i := range out {
		rule, ok := app.Settings.DurableFor(out[i].Channel)
		if !ok {
			if err := n.broker.Publish(ctx, app.ID, out[i].Channel, &out[i].Pub); err != nil {
				return err
			}
			n.published(app.ID, &out[i])
			continue
		}
		p := &out[i].Pub
		appends = append(appends, history.Append{AppID: app.ID, Channel: out[i].Channel, Event: p.Event, Data: p.Data,
			SocketID: p.ExcludeSocketID, UserID: p.UserID,
			Retention: history.Retention{MaxEvents: rule.MaxEvents, MaxAge: time.Duration(rule.MaxAge)}})
		logged = append(logged, i)
	}
	if len(appends) == 0 {
		return nil
	}
	positions, err := n.history.Append(ctx, appends)
	if err != nil {
		n.log.Error("durable publish: committing to the log failed", "app", app.ID, "err", err)
		return ErrLogUnavailable
	}
	for j, i := range logged {
		o := &out[i]
		o.Pub.Seq, o.Pub.Epoch = positions[j].Seq, positions[j].Epoch
		if err := n.broker.Publish(ctx, app.ID, o.Channel, &o.Pub); err != nil {
			n.backplaneMissed.Add(1)
			// At most one line a second: during a Redis outage every
			// durable publish gets here.
			if now := time.Now().Unix(); n.missWarned.Swap(now) != now {
				n.log.Warn("durable publish: the backplane refused a committed event; nodes will read it from the log", "app", app.ID, "err", err, "refused_total", n.backplaneMissed.Load())
			}
		}
		n.published(app.ID, o)
	}
	return nil
}

// published counts a publish and shows it on the app's debug stream.
func (n *Node) published(appID string, o *Outgoing) {
	n.meter.Published(appID, 1)
	// Checked first: copying the payload for the entry costs an
	// allocation that a stream nobody watches should not.
	if n.debugWatched(appID) {
		n.debugEvent(appID, debugEntry{Type: "api_message", Channel: o.Channel, Event: o.Pub.Event, Data: string(o.Pub.Data), SocketID: o.Pub.ExcludeSocketID})
	}
}

// TerminateUser closes every connection signed in as userID, on every node.
func (n *Node) TerminateUser(ctx context.Context, appID, userID string) error {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	return n.broker.PublishControl(ctx, broker.Control{Kind: broker.TerminateUser, AppID: appID, UserID: userID})
}

// ChannelInfo describes one occupied channel.
type ChannelInfo struct {
	Name          string
	Subscriptions int
	Users         int // presence channels only
}

// Channels returns the app's occupied channels whose names start with
// prefix, with their subscription counts and, if users is set, the user
// counts of presence channels.
func (n *Node) Channels(ctx context.Context, appID, prefix string, users bool) ([]ChannelInfo, error) {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	counts, err := n.occupied.Counts(ctx, appID, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]ChannelInfo, 0, len(counts))
	for name, subs := range counts {
		info := ChannelInfo{Name: name, Subscriptions: subs}
		if users && protocol.KindOf(name) == protocol.Presence {
			if info.Users, err = n.presence.Count(ctx, appID, name); err != nil {
				return nil, err
			}
		}
		out = append(out, info)
	}
	return out, nil
}

// Channel describes one channel across the cluster; an unoccupied channel
// has zero counts.
func (n *Node) Channel(ctx context.Context, appID, channel string) (ChannelInfo, error) {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	subs, err := n.occupied.Count(ctx, appID, channel)
	info := ChannelInfo{Name: channel, Subscriptions: subs}
	if err == nil && protocol.KindOf(channel) == protocol.Presence {
		info.Users, err = n.presence.Count(ctx, appID, channel)
	}
	return info, err
}

// ConnectionsByNode returns the app's open connections on each live node,
// by node id.
func (n *Node) ConnectionsByNode(ctx context.Context, appID string) (map[string]int, error) {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	return n.conns.ByNode(ctx, appID, appSlot)
}

// Users returns the ids of a presence channel's members.
func (n *Node) Users(ctx context.Context, appID, channel string) ([]string, error) {
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	members, err := n.presence.Members(ctx, appID, channel)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.UserID
	}
	return ids, nil
}

// Stats are a node's live counters.
type Stats struct {
	Connections   int
	SlowConsumers uint64
	Panics        uint64
	// Durable channels: those with local subscribers, the repairs that
	// read missed events from the log, the resumes asked for and those
	// answered with herald:resume_failed, and committed events the
	// backplane refused.
	DurableChannels  int
	Repairs          uint64
	Resumes          uint64
	ResumesFailed    uint64
	BackplaneRefused uint64
}

// Stats returns the node's live counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	conns := len(n.clients)
	n.mu.Unlock()
	n.durMu.Lock()
	durables := len(n.durables)
	n.durMu.Unlock()
	return Stats{Connections: conns, SlowConsumers: n.slowConsumers.Load(), Panics: n.panics.Load(),
		DurableChannels: durables, Repairs: n.repairs.Load(), Resumes: n.resumes.Load(), ResumesFailed: n.resumesFailed.Load(),
		BackplaneRefused: n.backplaneMissed.Load()}
}

// Meter returns the node's usage meter.
func (n *Node) Meter() *billing.Meter { return n.meter }

// ErrShuttingDown refuses new connections while the node drains.
var ErrShuttingDown = errors.New("node is shutting down")

// Close asks every client to reconnect elsewhere (4200), waits up to ctx for
// them to go, and stops the sweeper. New connections are refused meanwhile.
func (n *Node) Close(ctx context.Context) error {
	if n.closing.Swap(true) {
		return nil
	}
	close(n.stop)
	<-n.sweeperDone
	<-n.presenceDone
	<-n.headsDone
	n.mu.Lock()
	conns := make([]*Client, 0, len(n.clients))
	for c := range n.clients {
		conns = append(conns, c)
	}
	n.mu.Unlock()
	for _, c := range conns {
		c.Close(protocol.CodeReconnect, "server shutting down")
	}
	defer func() {
		for _, f := range n.flushers {
			f.close()
		}
	}()
	for {
		if n.Stats().Connections == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// newSocketID returns a socket id in the ^\d+\.\d+$ shape the official SDKs
// require, from 64 random bits, so ids are unique across the cluster without
// coordination.
func newSocketID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	id := strconv.AppendUint(make([]byte, 0, 21), uint64(binary.BigEndian.Uint32(b[:4])), 10)
	id = append(id, '.')
	id = strconv.AppendUint(id, uint64(binary.BigEndian.Uint32(b[4:])), 10)
	return string(id)
}

// sweep pings clients that have been silent for the activity timeout and
// closes those that did not answer within the pong timeout. One goroutine
// and one ticker serve every connection.
func (n *Node) sweep() {
	defer close(n.sweeperDone)
	period := min(n.cfg.PongTimeout, n.cfg.ActivityTimeout) / 4
	period = max(period, 50*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	ping := []byte(`{"event":"pusher:ping","data":"{}"}`)
	var batch []*Client
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			batch = batch[:0]
			n.mu.Lock()
			for c := range n.clients {
				batch = append(batch, c)
			}
			n.mu.Unlock()
			for _, c := range batch {
				silent := now.Sub(time.Unix(0, c.lastSeen.Load()))
				switch {
				case c.pinged.Load() && silent > n.cfg.ActivityTimeout+n.cfg.PongTimeout:
					c.Close(protocol.CodePongTimeout, "pong reply not received")
				case !c.pinged.Load() && silent > n.cfg.ActivityTimeout:
					c.pinged.Store(true)
					c.Enqueue(ping)
				}
			}
			clear(batch)
		}
	}
}

// every calls fn every interval until the node stops, then closes done.
func (n *Node) every(interval time.Duration, done chan struct{}, fn func()) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// keepPresence renews this node's presence entries and removes the members
// of nodes that died, announcing member_removed for them; the node runs it
// every PresenceInterval.
func (n *Node) keepPresence() {
	n.mu.Lock()
	local := make(map[channelKey]map[string]presence.Member, len(n.presences))
	for k, conns := range n.presences {
		local[k] = maps.Clone(conns)
	}
	n.mu.Unlock()
	for k, conns := range local {
		ctx, cancel := n.bounded(context.Background())
		back, err := n.presence.Heartbeat(ctx, k.appID, k.channel, conns)
		cancel()
		if err != nil {
			n.log.Warn("presence heartbeat failed", "app", k.appID, "err", err)
			continue
		}
		for _, m := range back {
			n.memberAdded(k.appID, k.channel, m, "")
		}
		ctx, cancel = n.bounded(context.Background())
		gone, err := n.presence.Expire(ctx, k.appID, k.channel)
		cancel()
		if err != nil {
			n.log.Warn("presence expiry failed", "app", k.appID, "err", err)
		}
		for _, user := range gone {
			n.memberRemoved(k.appID, k.channel, user, "")
		}
	}
}

// trackPresence records (or, with m nil, forgets) a local presence
// connection, whose entry the node keeps alive.
func (n *Node) trackPresence(appID, channel, connID string, m *presence.Member) {
	k := channelKey{appID, channel}
	n.mu.Lock()
	defer n.mu.Unlock()
	if m != nil {
		if n.presences[k] == nil {
			n.presences[k] = map[string]presence.Member{}
		}
		n.presences[k][connID] = *m
		return
	}
	delete(n.presences[k], connID)
	if len(n.presences[k]) == 0 {
		delete(n.presences, k)
	}
}
