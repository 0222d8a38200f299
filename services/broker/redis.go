package broker

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures a Redis broker. The zero value is usable.
type RedisOptions struct {
	// Prefix starts every Redis channel the broker uses, so that
	// deployments can share one Redis. Default "herald".
	Prefix string
	// ClusterKey, when set, is the HMAC-SHA256 key that signs every
	// envelope; envelopes without a valid MAC are dropped and counted.
	// Every node of a deployment must use the same key. Default: unsigned.
	ClusterKey []byte
	// Log receives notices about dropped envelopes and reconnects.
	// Default: discarded.
	Log *slog.Logger
}

// RedisStats counts what a Redis broker refused or recovered from.
type RedisStats struct {
	// DroppedEnvelopes counts messages that were malformed, unsigned or
	// badly signed, or that named another app or channel than the Redis
	// channel they arrived on.
	DroppedEnvelopes uint64
	// Reconnects counts how often the subscriber connection was
	// re-established and resubscribed after losing Redis.
	Reconnects uint64
}

// Redis is the broker for many nodes: each publication is one PUBLISH on
// the Redis channel of its (app, channel), and each node subscribes only to
// the channels it has local subscribers for. It writes no keys and uses
// two kinds of Redis channel:
//
//	<prefix>:{<app>}:ch:<channel>   publications of one app's channel
//	<prefix>:ctl                    control messages, for every node
//
// All subscriptions of a node share one Redis connection, read by one
// goroutine that calls the Handler in arrival order, so publications on
// one channel reach the Handler in publish order. go-redis re-establishes
// that connection and its subscriptions by itself after Redis restarts;
// publications sent while it was down are lost (ephemeral channels are at
// most once; durable ones catch up from history).
//
// The client should be created with ContextTimeoutEnabled so that each
// call's context deadline bounds its network I/O.
type Redis struct {
	client redis.UniversalClient
	prefix string
	ctl    string // the Redis channel for control messages
	key    []byte
	log    *slog.Logger

	// cmdMu orders each change of the subscription table with its
	// SUBSCRIBE or UNSUBSCRIBE, so that Redis sees them in table order when
	// a channel is unsubscribed and subscribed again concurrently. It is
	// taken before mu; the reader goroutine never takes it.
	cmdMu sync.Mutex
	// mu guards everything below it. It is never held while calling Redis
	// or the Handler.
	mu      sync.Mutex
	handler Handler
	ps      *redis.PubSub
	subs    map[string]*subscription // by Redis channel
	closed  bool
	done    chan struct{} // closed when the reader goroutine has stopped

	closedFlag atomic.Bool // closed, readable without mu on the publish path
	ctlSeen    atomic.Uint64
	dropped    atomic.Uint64
	reconnects atomic.Uint64
}

var _ Broker = (*Redis)(nil)

type subscription struct {
	appID, channel string
	// confirmed is closed when Redis has confirmed the subscription.
	confirmed chan struct{}
	once      sync.Once
}

// NewRedis returns a broker on client. Call Run before anything else.
func NewRedis(client redis.UniversalClient, opts RedisOptions) *Redis {
	if opts.Prefix == "" {
		opts.Prefix = "herald"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Redis{
		client: client,
		prefix: opts.Prefix,
		ctl:    opts.Prefix + ":ctl",
		key:    opts.ClusterKey,
		log:    opts.Log,
		subs:   map[string]*subscription{},
	}
}

// Run subscribes to control messages and starts the goroutine that
// delivers to h. It does not wait for Redis: if Redis is down the broker
// connects when it comes back, and Ready reports the problem meanwhile.
func (r *Redis) Run(h Handler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.handler != nil {
		return errors.New("broker: Run called twice")
	}
	r.handler = h
	// An error here only means Redis is down; the channel is remembered
	// and subscribed on connect.
	r.ps = r.client.Subscribe(context.Background(), r.ctl)
	// The buffer absorbs bursts between go-redis's reader and ours; the
	// Handler never blocks, so it does not fill up.
	msgs := r.ps.ChannelWithSubscriptions(redis.WithChannelSize(4096))
	r.done = make(chan struct{})
	go r.read(msgs)
	return nil
}

// read delivers what arrives on the subscriber connection, in order, until
// the PubSub is closed.
func (r *Redis) read(msgs <-chan any) {
	defer close(r.done)
	for m := range msgs {
		switch m := m.(type) {
		case *redis.Subscription:
			r.confirm(m)
		case *redis.Message:
			r.deliver(m)
		}
	}
}

func (r *Redis) confirm(m *redis.Subscription) {
	if m.Kind != "subscribe" {
		return
	}
	if m.Channel == r.ctl {
		// Every connection subscribes to the control channel first, so
		// each confirmation after the first marks a reconnect.
		if r.ctlSeen.Add(1) > 1 {
			r.reconnects.Add(1)
			r.log.Info("redis broker resubscribed after reconnecting")
		}
		return
	}
	r.mu.Lock()
	s := r.subs[m.Channel]
	r.mu.Unlock()
	if s != nil {
		s.once.Do(func() { close(s.confirmed) })
	}
}

func (r *Redis) deliver(m *redis.Message) {
	if m.Channel == r.ctl {
		c, err := decodeControl(r.key, m.Channel, []byte(m.Payload))
		if err != nil {
			r.drop(m.Channel, err)
			return
		}
		r.handler.HandleControl(c)
		return
	}
	r.mu.Lock()
	s := r.subs[m.Channel]
	r.mu.Unlock()
	if s == nil {
		// Unsubscribed locally while Redis was still sending: the node no
		// longer wants it.
		return
	}
	pub, err := decodePublication(r.key, m.Channel, s.appID, s.channel, []byte(m.Payload))
	if err != nil {
		r.drop(m.Channel, err)
		return
	}
	r.handler.HandlePublication(s.appID, s.channel, pub)
}

// drop counts a refused envelope. It logs the first drop and then only at
// powers of two, so a flood of forged messages cannot flood the log.
func (r *Redis) drop(redisChannel string, err error) {
	n := r.dropped.Add(1)
	if n&(n-1) == 0 {
		r.log.Warn("redis broker dropped an envelope", "redis_channel", redisChannel, "reason", err.Error(), "dropped_total", n)
	}
}

// Publish PUBLISHes pub on the Redis channel of (appID, channel). Any error,
// including ctx's deadline, means the publication may not have been
// delivered.
func (r *Redis) Publish(ctx context.Context, appID, channel string, pub *Publication) error {
	if r.closedFlag.Load() {
		return ErrClosed
	}
	if err := checkAppID(appID); err != nil {
		return err
	}
	rc := r.channelKey(appID, channel)
	payload, err := encodePublication(r.key, rc, appID, channel, pub)
	if err != nil {
		return err
	}
	if err := r.client.Publish(ctx, rc, payload).Err(); err != nil {
		return fmt.Errorf("broker: redis publish: %w", err)
	}
	return nil
}

// PublishControl PUBLISHes c on the control channel, which every node
// subscribes to.
func (r *Redis) PublishControl(ctx context.Context, c Control) error {
	if r.closedFlag.Load() {
		return ErrClosed
	}
	if err := checkAppID(c.AppID); err != nil {
		return err
	}
	payload, err := encodeControl(r.key, r.ctl, c)
	if err != nil {
		return err
	}
	if err := r.client.Publish(ctx, r.ctl, payload).Err(); err != nil {
		return fmt.Errorf("broker: redis publish control: %w", err)
	}
	return nil
}

// Subscribe subscribes this node to (appID, channel) and returns once Redis
// has confirmed it, so a publication sent after Subscribe returns is
// delivered. On error (Redis unreachable, or ctx done first) the node is
// left unsubscribed.
func (r *Redis) Subscribe(ctx context.Context, appID, channel string) error {
	if err := checkAppID(appID); err != nil {
		return err
	}
	rc := r.channelKey(appID, channel)
	r.cmdMu.Lock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.cmdMu.Unlock()
		return ErrClosed
	}
	ps := r.ps
	if ps == nil {
		r.mu.Unlock()
		r.cmdMu.Unlock()
		return errNotRunning
	}
	s, ok := r.subs[rc]
	if !ok {
		s = &subscription{appID: appID, channel: channel, confirmed: make(chan struct{})}
		r.subs[rc] = s
	}
	r.mu.Unlock()
	var err error
	if !ok {
		err = ps.Subscribe(ctx, rc)
	}
	r.cmdMu.Unlock()
	if err != nil {
		r.undo(rc, s)
		return fmt.Errorf("broker: redis subscribe: %w", err)
	}
	select {
	case <-s.confirmed:
		return nil
	case <-ctx.Done():
		if !ok {
			r.undo(rc, s)
		}
		return fmt.Errorf("broker: redis subscribe not confirmed: %w", ctx.Err())
	}
}

var errNotRunning = errors.New("broker: Run has not been called")

// undo forgets a subscription that failed, in Redis too, so that go-redis
// does not restore it on its next reconnect.
func (r *Redis) undo(rc string, s *subscription) {
	r.cmdMu.Lock()
	defer r.cmdMu.Unlock()
	r.mu.Lock()
	mine := r.subs[rc] == s
	if mine {
		delete(r.subs, rc)
	}
	ps := r.ps
	r.mu.Unlock()
	if !mine {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), unsubscribeTimeout)
	defer cancel()
	_ = ps.Unsubscribe(ctx, rc)
}

// Unsubscribe stops delivery of (appID, channel) at once. An error means
// Redis was not told, but the subscription is not restored on reconnect
// and whatever still arrives for it is ignored.
func (r *Redis) Unsubscribe(ctx context.Context, appID, channel string) error {
	if err := checkAppID(appID); err != nil {
		return err
	}
	rc := r.channelKey(appID, channel)
	r.cmdMu.Lock()
	defer r.cmdMu.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	_, ok := r.subs[rc]
	delete(r.subs, rc)
	ps := r.ps
	r.mu.Unlock()
	if !ok || ps == nil {
		return nil
	}
	if err := ps.Unsubscribe(ctx, rc); err != nil {
		return fmt.Errorf("broker: redis unsubscribe: %w", err)
	}
	return nil
}

// Ready pings Redis on a pooled connection and on the subscriber
// connection, and checks that the control channel has been subscribed.
func (r *Redis) Ready(ctx context.Context) error {
	r.mu.Lock()
	closed, ps := r.closed, r.ps
	r.mu.Unlock()
	if closed || ps == nil {
		return ErrClosed
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("broker: redis unreachable: %w", err)
	}
	if err := ps.Ping(ctx); err != nil {
		return fmt.Errorf("broker: redis subscriber connection down: %w", err)
	}
	if r.ctlSeen.Load() == 0 {
		return errors.New("broker: redis has not confirmed the control subscription yet")
	}
	return nil
}

// Stats returns the broker's counters.
func (r *Redis) Stats() RedisStats {
	return RedisStats{DroppedEnvelopes: r.dropped.Load(), Reconnects: r.reconnects.Load()}
}

// Close closes the subscriber connection and waits for the delivering
// goroutine to stop. It leaves the client open: the caller owns it.
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.closedFlag.Store(true)
	ps, done := r.ps, r.done
	clear(r.subs)
	r.mu.Unlock()
	if ps == nil {
		return nil
	}
	err := ps.Close()
	<-done
	return err
}

// channelKey is the Redis channel of (appID, channel). The app id is the
// hash tag, so on Redis Cluster an app's traffic stays on one shard.
func (r *Redis) channelKey(appID, channel string) string {
	return r.prefix + ":{" + appID + "}:ch:" + channel
}

// unsubscribeTimeout bounds the clean-up of a failed subscription, like
// every other Redis call.
const unsubscribeTimeout = 2 * time.Second

// checkAppID refuses app ids that would break the key layout: the id is
// the hash tag between braces and is followed by a colon.
func checkAppID(appID string) error {
	if appID == "" || strings.ContainsAny(appID, "{}:") {
		return fmt.Errorf("broker: invalid app id %q", appID)
	}
	return nil
}

// envelopeVersion is the only envelope version this broker reads or
// writes. A change of format gets a new version, so that nodes of mixed
// versions drop (and count) what they cannot read instead of misreading it.
const envelopeVersion = 1

// envelope is the JSON sent on Redis: a version, an optional MAC, and the
// message as the exact bytes the MAC covers.
type envelope struct {
	V   int             `json:"v"`
	MAC []byte          `json:"mac,omitempty"`
	Msg json.RawMessage `json:"msg"`
}

// pubMsg is the message of a publication envelope. It names its app and
// channel so that a message published on the wrong Redis channel is
// recognised and dropped.
type pubMsg struct {
	App     string `json:"app"`
	Channel string `json:"ch"`
	Event   string `json:"ev"`
	Data    string `json:"data"`
	Exclude string `json:"x,omitempty"`
	UserID  string `json:"uid,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Epoch   string `json:"ep,omitempty"`
}

// ctlMsg is the message of a control envelope.
type ctlMsg struct {
	Kind ControlKind `json:"kind"`
	App  string      `json:"app"`
	User string      `json:"uid,omitempty"`
}

func encodePublication(key []byte, redisChannel, appID, channel string, pub *Publication) ([]byte, error) {
	return seal(key, redisChannel, pubMsg{
		App: appID, Channel: channel, Event: pub.Event, Data: string(pub.Data),
		Exclude: pub.ExcludeSocketID, UserID: pub.UserID, Seq: pub.Seq, Epoch: pub.Epoch,
	})
}

func encodeControl(key []byte, redisChannel string, c Control) ([]byte, error) {
	if c.Kind != TerminateUser && c.Kind != InvalidateApp {
		return nil, fmt.Errorf("broker: unknown control kind %d", c.Kind)
	}
	return seal(key, redisChannel, ctlMsg{Kind: c.Kind, App: c.AppID, User: c.UserID})
}

func seal(key []byte, redisChannel string, msg any) ([]byte, error) {
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("broker: encode envelope: %w", err)
	}
	env := envelope{V: envelopeVersion, Msg: body}
	if key != nil {
		env.MAC = mac(key, redisChannel, body)
	}
	return json.Marshal(env)
}

// open checks an envelope's version and, under a cluster key, its MAC, and
// returns its message bytes.
func open(key []byte, redisChannel string, payload []byte) ([]byte, error) {
	var env envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		return nil, fmt.Errorf("malformed envelope: %w", err)
	}
	if env.V != envelopeVersion {
		return nil, fmt.Errorf("envelope version %d", env.V)
	}
	if key != nil && !hmac.Equal(env.MAC, mac(key, redisChannel, env.Msg)) {
		return nil, errors.New("missing or bad MAC")
	}
	return env.Msg, nil
}

// mac signs the message together with the Redis channel it is sent on, so
// a signed envelope replayed onto another channel or deployment fails.
func mac(key []byte, redisChannel string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("herald-envelope-v1\x00"))
	h.Write([]byte(redisChannel))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)
}

// decodePublication reads a publication envelope that arrived on
// redisChannel, the channel of (appID, channel).
func decodePublication(key []byte, redisChannel, appID, channel string, payload []byte) (*Publication, error) {
	body, err := open(key, redisChannel, payload)
	if err != nil {
		return nil, err
	}
	var m pubMsg
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("malformed publication: %w", err)
	}
	if m.App != appID || m.Channel != channel {
		return nil, errors.New("publication names another app or channel than its Redis channel")
	}
	return &Publication{Event: m.Event, Data: []byte(m.Data), ExcludeSocketID: m.Exclude, UserID: m.UserID, Seq: m.Seq, Epoch: m.Epoch}, nil
}

// decodeControl reads a control envelope that arrived on the control
// channel redisChannel.
func decodeControl(key []byte, redisChannel string, payload []byte) (Control, error) {
	body, err := open(key, redisChannel, payload)
	if err != nil {
		return Control{}, err
	}
	var m ctlMsg
	if err := json.Unmarshal(body, &m); err != nil {
		return Control{}, fmt.Errorf("malformed control message: %w", err)
	}
	if m.Kind != TerminateUser && m.Kind != InvalidateApp {
		return Control{}, fmt.Errorf("unknown control kind %d", m.Kind)
	}
	if err := checkAppID(m.App); err != nil {
		return Control{}, err
	}
	return Control{Kind: m.Kind, AppID: m.App, UserID: m.User}, nil
}
