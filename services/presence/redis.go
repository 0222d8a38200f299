package presence

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The scripts keep each channel's keys consistent: every change of one
// (app, channel) is one atomic script, judged by the Redis clock.
//
//go:embed lua/*.lua
var luaFiles embed.FS

func luaScript(files ...string) *redis.Script {
	var src strings.Builder
	for _, f := range files {
		b, err := luaFiles.ReadFile("lua/" + f)
		if err != nil {
			panic(err) // the files are embedded: only a typo gets here
		}
		src.Write(b)
		src.WriteByte('\n')
	}
	return redis.NewScript(src.String())
}

var (
	joinScript       = luaScript("clock.lua", "lib.lua", "join.lua")
	leaveScript      = luaScript("clock.lua", "lib.lua", "leave.lua")
	heartbeatScript  = luaScript("clock.lua", "lib.lua", "heartbeat.lua")
	expireScript     = luaScript("clock.lua", "lib.lua", "expire.lua")
	membersScript    = luaScript("clock.lua", "lib.lua", "members.lua")
	occAddScript     = luaScript("clock.lua", "occ_add.lua")
	occReadScript    = luaScript("clock.lua", "occ_read.lua")
	occAcquireScript = luaScript("clock.lua", "occ_acquire.lua")
	occByNodeScript  = luaScript("clock.lua", "occ_bynode.lua")
)

const (
	defaultPrefix = "herald"
	defaultTTL    = 30 * time.Second
	defaultKind   = "occ"
)

// RedisPresenceOptions configures a Redis presence store. The zero value is
// usable.
type RedisPresenceOptions struct {
	// Prefix starts every key, so that deployments can share one Redis.
	// Default "herald".
	Prefix string
	// TTL is how long an entry lives without a heartbeat. Default 30 s.
	TTL time.Duration
}

// Redis is the presence store for many nodes. Each (app, channel) has four
// keys, all tagged with the app so that they share a Redis Cluster slot:
//
//	<prefix>:{<app>}:pres:<channel>:exp     ZSET connection id → expiry (ms)
//	<prefix>:{<app>}:pres:<channel>:conns   HASH connection id → user id
//	<prefix>:{<app>}:pres:<channel>:infos   HASH user id → user_info JSON
//	<prefix>:{<app>}:pres:<channel>:counts  HASH user id → entries
//
// An entry lapses when its node stops heartbeating for TTL; Members and
// Count leave lapsed entries out at once, and Expire removes them. A user
// whose entries all lapsed stays a member for Join (first is false) until
// Expire reports it, so every member_added is followed by exactly one
// member_removed, from Leave or from Expire.
type Redis struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
}

var _ Store = (*Redis)(nil)

// NewRedis returns a presence store on client.
func NewRedis(client redis.UniversalClient, opts RedisPresenceOptions) *Redis {
	if opts.Prefix == "" {
		opts.Prefix = defaultPrefix
	}
	if opts.TTL <= 0 {
		opts.TTL = defaultTTL
	}
	return &Redis{client: client, prefix: opts.Prefix, ttl: opts.TTL}
}

func (r *Redis) keys(appID, channel string) ([]string, error) {
	if err := checkAppID(appID); err != nil {
		return nil, err
	}
	base := r.prefix + ":{" + appID + "}:pres:" + channel + ":"
	return []string{base + "exp", base + "conns", base + "infos", base + "counts"}, nil
}

// Join records connID's entry and renews it if it was there. Joining with
// a connection id already joined as another user is an error.
func (r *Redis) Join(ctx context.Context, appID, channel, connID string, m Member, maxMembers int) (bool, error) {
	keys, err := r.keys(appID, channel)
	if err != nil {
		return false, err
	}
	hasInfo := "0"
	if m.UserInfo != nil {
		hasInfo = "1"
	}
	n, err := joinScript.Run(ctx, r.client, keys, connID, m.UserID, []byte(m.UserInfo), hasInfo,
		max(maxMembers, 0), r.ttl.Milliseconds()).Int()
	switch {
	case err != nil:
		return false, fmt.Errorf("presence: redis join: %w", err)
	case n < 0:
		return false, ErrFull
	}
	return n == 1, nil
}

func (r *Redis) Leave(ctx context.Context, appID, channel, connID, userID string) (bool, error) {
	keys, err := r.keys(appID, channel)
	if err != nil {
		return false, err
	}
	n, err := leaveScript.Run(ctx, r.client, keys, connID, userID).Int()
	if err != nil {
		return false, fmt.Errorf("presence: redis leave: %w", err)
	}
	return n == 1, nil
}

func (r *Redis) Members(ctx context.Context, appID, channel string) ([]Member, error) {
	keys, err := r.keys(appID, channel)
	if err != nil {
		return nil, err
	}
	flat, err := membersScript.Run(ctx, r.client, keys, "members").Slice()
	if err != nil {
		return nil, fmt.Errorf("presence: redis members: %w", err)
	}
	out := make([]Member, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		id, _ := flat[i].(string)
		m := Member{UserID: id}
		if info, ok := flat[i+1].(string); ok {
			m.UserInfo = json.RawMessage(info)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

func (r *Redis) Count(ctx context.Context, appID, channel string) (int, error) {
	keys, err := r.keys(appID, channel)
	if err != nil {
		return 0, err
	}
	n, err := membersScript.Run(ctx, r.client, keys, "count").Int()
	if err != nil {
		return 0, fmt.Errorf("presence: redis count: %w", err)
	}
	return n, nil
}

// Heartbeat renews the entries of connIDs that still exist. An entry that
// already lapsed and was expired is not restored: its user may have been
// announced as removed, so its connection must join again.
func (r *Redis) Heartbeat(ctx context.Context, appID, channel string, conns map[string]Member) ([]Member, error) {
	if len(conns) == 0 {
		return nil, nil
	}
	keys, err := r.keys(appID, channel)
	if err != nil {
		return nil, err
	}
	args := make([]any, 0, 1+4*len(conns))
	args = append(args, r.ttl.Milliseconds())
	for id, m := range conns {
		hasInfo := "0"
		if m.UserInfo != nil {
			hasInfo = "1"
		}
		args = append(args, id, m.UserID, []byte(m.UserInfo), hasInfo)
	}
	users, err := heartbeatScript.Run(ctx, r.client, keys, args...).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("presence: redis heartbeat: %w", err)
	}
	readded := make([]Member, 0, len(users))
	for _, u := range users {
		for _, m := range conns {
			if m.UserID == u {
				readded = append(readded, m)
				break
			}
		}
	}
	return readded, nil
}

func (r *Redis) Expire(ctx context.Context, appID, channel string) ([]string, error) {
	keys, err := r.keys(appID, channel)
	if err != nil {
		return nil, err
	}
	gone, err := expireScript.Run(ctx, r.client, keys).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("presence: redis expire: %w", err)
	}
	return gone, nil
}

// OccupancyOptions configures a RedisOccupancy.
type OccupancyOptions struct {
	// Prefix starts every key, so that deployments can share one Redis.
	// Default "herald".
	Prefix string
	// NodeID names this node among the deployment's nodes; required and
	// unique per running node.
	NodeID string
	// Kind names the family of keys the counts live in, so that counters of
	// different things on one Redis (channel subscriptions, connections
	// held against a quota) never see each other's names. Default "occ",
	// the channel occupancy; otherwise 1 to 16 lowercase letters, and not
	// "pres", which the presence store's keys use.
	Kind string
	// TTL is how long a node's counts count without a heartbeat. Default
	// 30 s; the node heartbeats every TTL/3.
	TTL time.Duration
	// Log receives heartbeat failures. Default: discarded.
	Log *slog.Logger
}

// RedisOccupancy is the Occupancy for many nodes. Each node keeps its own
// counts per app, and each app lists its live nodes, in keys of the
// options' Kind ("occ" unless set):
//
//	<prefix>:{<app>}:<kind>:<node>   HASH name → this node's count
//	<prefix>:{<app>}:<kind>nodes     ZSET node id → expiry (ms)
//
// A background heartbeat renews the node's entry in every app it has
// counts in. Readers sum the live nodes' counts and delete the counts of
// nodes that lapsed. The node also keeps its counts in memory, so it can
// write them back if Redis lost them (a restart) or another node deleted
// them after a long pause.
type RedisOccupancy struct {
	client redis.UniversalClient
	prefix string
	kind   string
	node   string
	ttl    time.Duration
	log    *slog.Logger

	// gate is held shared by Add and Acquire and exclusively by restore, so that a
	// restore writes back counts with no Add half done.
	gate sync.RWMutex
	// mu guards mirror and closed; it is never held while calling Redis.
	mu     sync.Mutex
	mirror map[string]map[string]int // app → name → this node's count
	closed bool

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

var _ Occupancy = (*RedisOccupancy)(nil)

var errOccupancyClosed = errors.New("presence: occupancy closed")

// NewRedisOccupancy returns an Occupancy on client and starts its
// heartbeat. Close stops it.
func NewRedisOccupancy(client redis.UniversalClient, opts OccupancyOptions) (*RedisOccupancy, error) {
	if opts.NodeID == "" || strings.ContainsAny(opts.NodeID, "{}") {
		return nil, fmt.Errorf("presence: occupancy needs a node id without braces, got %q", opts.NodeID)
	}
	if opts.Kind == "" {
		opts.Kind = defaultKind
	}
	if !validKind(opts.Kind) {
		return nil, fmt.Errorf("presence: occupancy kind must be 1 to 16 lowercase letters other than \"pres\", got %q", opts.Kind)
	}
	if opts.Prefix == "" {
		opts.Prefix = defaultPrefix
	}
	if opts.TTL <= 0 {
		opts.TTL = defaultTTL
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	o := &RedisOccupancy{
		client: client, prefix: opts.Prefix, kind: opts.Kind, node: opts.NodeID, ttl: opts.TTL, log: opts.Log,
		mirror: map[string]map[string]int{},
		stop:   make(chan struct{}), done: make(chan struct{}),
	}
	go o.heartbeat()
	return o, nil
}

// validKind reports whether kind can name a key family: the counts keys
// put a colon after it and the node list appends "nodes", so lowercase
// letters alone keep every kind's keys apart. "pres" is refused because a
// node id with colons could then spell a presence key.
func validKind(kind string) bool {
	if len(kind) == 0 || len(kind) > 16 || kind == "pres" {
		return false
	}
	for _, c := range []byte(kind) {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func (o *RedisOccupancy) appPrefix(appID string) string { return o.prefix + ":{" + appID + "}:" }

// countsPrefix is the key of a node's counts in appID, short of the node id.
func (o *RedisOccupancy) countsPrefix(appID string) string { return o.appPrefix(appID) + o.kind + ":" }
func (o *RedisOccupancy) countsKey(appID string) string    { return o.countsPrefix(appID) + o.node }
func (o *RedisOccupancy) nodesKey(appID string) string     { return o.appPrefix(appID) + o.kind + "nodes" }

// Add changes this node's count and heartbeats at once if the node is not
// live in the app yet.
func (o *RedisOccupancy) Add(ctx context.Context, appID, channel string, delta int) error {
	if err := checkAppID(appID); err != nil {
		return err
	}
	if delta == 0 {
		return nil
	}
	o.gate.RLock()
	live, counted, err := o.add(ctx, appID, channel, delta)
	o.gate.RUnlock()
	if err != nil || live || !counted {
		return err
	}
	return o.beat(ctx, []string{appID})
}

// add applies delta in Redis and then in the mirror, under the shared
// gate. It reports whether the node was live in the app and whether it
// still has counts there.
func (o *RedisOccupancy) add(ctx context.Context, appID, channel string, delta int) (live, counted bool, err error) {
	o.mu.Lock()
	closed := o.closed
	o.mu.Unlock()
	if closed {
		return false, false, errOccupancyClosed
	}
	n, err := occAddScript.Run(ctx, o.client, []string{o.countsKey(appID), o.nodesKey(appID)}, channel, delta, o.node).Int()
	if err != nil {
		return false, false, fmt.Errorf("presence: redis occupancy add: %w", err)
	}
	return n == 1, o.remember(appID, channel, delta), nil
}

// remember applies delta to the mirror, as the scripts did in Redis, and
// reports whether the node still has counts in the app.
func (o *RedisOccupancy) remember(appID, name string, delta int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	counts := o.mirror[appID]
	if c := counts[name] + delta; c > 0 {
		if counts == nil {
			counts = map[string]int{}
			o.mirror[appID] = counts
		}
		counts[name] = c
	} else {
		delete(counts, name)
		if len(counts) == 0 {
			delete(o.mirror, appID)
		}
	}
	return len(o.mirror[appID]) > 0
}

// Acquire judges the limit and adds in one script. A node not yet live in
// the app lists itself in that same script, so that the other nodes count
// the slot at once. If Redis lost the counts this node holds there, they
// are written back before the limit is judged, since judging without them
// could overshoot it.
func (o *RedisOccupancy) Acquire(ctx context.Context, appID, name string, limit int) (bool, error) {
	if err := checkAppID(appID); err != nil {
		return false, err
	}
	acquired, lost, err := o.acquire(ctx, appID, name, limit)
	if err != nil || !lost {
		return acquired, err
	}
	if err := o.revive(ctx, appID); err != nil {
		return false, err
	}
	// Once written back, the counts go missing again only if Redis loses
	// them once more within this call; that is reported, not chased.
	acquired, lost, err = o.acquire(ctx, appID, name, limit)
	if lost {
		err = fmt.Errorf("presence: redis occupancy acquire: counts of app %q lost again", appID)
	}
	return acquired, err
}

// acquire runs the acquire script and records a success in the mirror,
// under the shared gate. lost reports that the script found this node's
// counts missing and changed nothing.
func (o *RedisOccupancy) acquire(ctx context.Context, appID, name string, limit int) (acquired, lost bool, err error) {
	o.gate.RLock()
	defer o.gate.RUnlock()
	o.mu.Lock()
	closed := o.closed
	held := "0"
	if len(o.mirror[appID]) > 0 {
		held = "1"
	}
	o.mu.Unlock()
	if closed {
		return false, false, errOccupancyClosed
	}
	n, err := occAcquireScript.Run(ctx, o.client, []string{o.nodesKey(appID), o.countsKey(appID)},
		o.countsPrefix(appID), name, max(limit, 0), o.node, o.ttl.Milliseconds(), held).Int()
	switch {
	case err != nil:
		return false, false, fmt.Errorf("presence: redis occupancy acquire: %w", err)
	case n < 0:
		return false, true, nil
	case n == 0:
		return false, false, nil
	}
	o.remember(appID, name, 1)
	return true, false, nil
}

// revive lists this node as live in appID and writes its counts there back
// from memory. The write-back is unconditional: an Add since the script
// found the counts missing could have recreated the key in part, which
// renew would take for intact.
func (o *RedisOccupancy) revive(ctx context.Context, appID string) error {
	apps := []string{appID}
	if _, err := o.renew(ctx, apps); err != nil {
		return err
	}
	return o.restore(ctx, apps)
}

func (o *RedisOccupancy) Counts(ctx context.Context, appID, prefix string) (map[string]int, error) {
	return o.read(ctx, appID, "prefix", prefix)
}

func (o *RedisOccupancy) Count(ctx context.Context, appID, channel string) (int, error) {
	counts, err := o.read(ctx, appID, "one", channel)
	return counts[channel], err
}

func (o *RedisOccupancy) ByNode(ctx context.Context, appID, name string) (map[string]int, error) {
	if err := checkAppID(appID); err != nil {
		return nil, err
	}
	flat, err := occByNodeScript.Run(ctx, o.client, []string{o.nodesKey(appID)}, o.countsPrefix(appID), name).Slice()
	if err != nil {
		return nil, fmt.Errorf("presence: redis occupancy by node: %w", err)
	}
	out := make(map[string]int, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		node, _ := flat[i].(string)
		n, _ := flat[i+1].(int64)
		out[node] = int(n)
	}
	return out, nil
}

func (o *RedisOccupancy) read(ctx context.Context, appID, mode, name string) (map[string]int, error) {
	if err := checkAppID(appID); err != nil {
		return nil, err
	}
	flat, err := occReadScript.Run(ctx, o.client, []string{o.nodesKey(appID)}, o.countsPrefix(appID), mode, name).Slice()
	if err != nil {
		return nil, fmt.Errorf("presence: redis occupancy: %w", err)
	}
	out := make(map[string]int, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		channel, _ := flat[i].(string)
		n, _ := flat[i+1].(int64)
		out[channel] = int(n)
	}
	return out, nil
}

// heartbeat renews the node's entries every TTL/3 until stopped.
func (o *RedisOccupancy) heartbeat() {
	defer close(o.done)
	t := time.NewTicker(o.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
		o.mu.Lock()
		apps := slices.Collect(maps.Keys(o.mirror))
		o.mu.Unlock()
		if len(apps) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), o.ttl/3)
		if err := o.beat(ctx, apps); err != nil {
			o.log.Warn("occupancy heartbeat failed", "apps", len(apps), "err", err)
		}
		cancel()
	}
}

// beat marks this node live in apps for another TTL, by the Redis clock,
// and restores its counts in the apps where they went missing.
func (o *RedisOccupancy) beat(ctx context.Context, apps []string) error {
	lost, err := o.renew(ctx, apps)
	if err != nil || len(lost) == 0 {
		return err
	}
	return o.restore(ctx, lost)
}

// renew marks this node live in apps for another TTL, by the Redis clock,
// and returns the apps where its counts went missing.
func (o *RedisOccupancy) renew(ctx context.Context, apps []string) ([]string, error) {
	now, err := o.client.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("presence: redis time: %w", err)
	}
	score := float64(now.Add(o.ttl).UnixMilli())
	pipe := o.client.Pipeline()
	added := make([]*redis.IntCmd, len(apps))
	exists := make([]*redis.IntCmd, len(apps))
	for i, app := range apps {
		added[i] = pipe.ZAdd(ctx, o.nodesKey(app), redis.Z{Score: score, Member: o.node})
		exists[i] = pipe.Exists(ctx, o.countsKey(app))
		pipe.PExpire(ctx, o.nodesKey(app), 2*o.ttl)
		pipe.PExpire(ctx, o.countsKey(app), 2*o.ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("presence: redis occupancy heartbeat: %w", err)
	}
	// A node newly listed, or listed without counts, lost them: Redis
	// restarted, or a reader deleted them while this node was paused.
	var lost []string
	for i, app := range apps {
		if added[i].Val() == 1 || exists[i].Val() == 0 {
			lost = append(lost, app)
		}
	}
	return lost, nil
}

// restore writes this node's counts in apps back from memory.
func (o *RedisOccupancy) restore(ctx context.Context, apps []string) error {
	o.gate.Lock()
	defer o.gate.Unlock()
	pipe := o.client.Pipeline()
	o.mu.Lock()
	for _, app := range apps {
		key := o.countsKey(app)
		pipe.Del(ctx, key)
		if counts := o.mirror[app]; len(counts) > 0 {
			fields := make([]any, 0, 2*len(counts))
			for channel, n := range counts {
				fields = append(fields, channel, n)
			}
			pipe.HSet(ctx, key, fields...)
			pipe.PExpire(ctx, key, 2*o.ttl)
		}
	}
	o.mu.Unlock()
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("presence: redis occupancy restore: %w", err)
	}
	return nil
}

// stopHeartbeat stops the heartbeat without removing anything, as a node
// that dies would.
func (o *RedisOccupancy) stopHeartbeat() {
	o.stopOnce.Do(func() { close(o.stop) })
	<-o.done
}

// Close stops the heartbeat and removes this node's counts, so the other
// nodes stop counting them at once rather than after TTL.
func (o *RedisOccupancy) Close() error {
	o.stopHeartbeat()
	o.gate.Lock()
	defer o.gate.Unlock()
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	apps := slices.Collect(maps.Keys(o.mirror))
	clear(o.mirror)
	o.mu.Unlock()
	if len(apps) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pipe := o.client.Pipeline()
	for _, app := range apps {
		pipe.Del(ctx, o.countsKey(app))
		pipe.ZRem(ctx, o.nodesKey(app), o.node)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("presence: redis occupancy close: %w", err)
	}
	return nil
}

// checkAppID refuses app ids that would break the key layout: the id is
// the hash tag between braces and is followed by a colon.
func checkAppID(appID string) error {
	if appID == "" || strings.ContainsAny(appID, "{}:") {
		return fmt.Errorf("presence: invalid app id %q", appID)
	}
	return nil
}
