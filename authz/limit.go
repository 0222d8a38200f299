package authz

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	memorystore "github.com/ulule/limiter/v3/drivers/store/memory"
	redisstore "github.com/ulule/limiter/v3/drivers/store/redis"
)

// GlobalScope is the scope of the buckets that are counted before an app is
// known, such as connections per IP. Every other bucket is scoped by its
// app id.
const GlobalScope = "global"

const (
	defaultLimitPrefix = "herald"
	// redisProbeInterval is how long a Limiter keeps to memory after Redis
	// failed before it asks Redis again: short enough that limits are shared
	// again soon after Redis returns, long enough that an outage does not add
	// a failed round trip (or a dial timeout) to every request.
	redisProbeInterval = time.Second
	// redisWarnInterval bounds the warnings about Redis being down to one
	// per interval, however many requests fall back.
	redisWarnInterval = time.Minute
	// maxPlainSubject is the longest subject put into a key as it is;
	// longer ones are hashed so that keys stay short.
	maxPlainSubject = 64
)

// Rate is Limit events per Period.
type Rate struct {
	Limit  int64
	Period time.Duration
}

// PerSecond returns the rate of n events per second.
func PerSecond(n int64) Rate { return Rate{Limit: n, Period: time.Second} }

// PerMinute returns the rate of n events per minute.
func PerMinute(n int64) Rate { return Rate{Limit: n, Period: time.Minute} }

// Verdict is the outcome of one Take.
type Verdict struct {
	// Allowed reports whether the events fit in the rate.
	Allowed bool
	// Limit is the rate's limit, or 0 for an unlimited rate.
	Limit int64
	// Remaining is how many more events fit in the current window.
	Remaining int64
	// Reset is when the current window ends. The stores report whole
	// seconds, so Reset is rounded up: it is never before the window's end
	// and at most a second after it. It is zero for an unlimited rate.
	Reset time.Time
}

// RetryAfter returns how long to wait before retrying, rounded up to whole
// seconds, at least 1 s when not allowed (for the Retry-After header). It is
// 0 when the events were allowed.
func (v Verdict) RetryAfter(now time.Time) time.Duration {
	if v.Allowed {
		return 0
	}
	secs := (v.Reset.Sub(now) + time.Second - 1) / time.Second
	return max(secs, 1) * time.Second
}

// LimiterOptions configures a Limiter. The zero value is usable: one node,
// counting in memory.
type LimiterOptions struct {
	// Redis shares the counts between all nodes. Nil counts in memory, which
	// is right only for a single node.
	Redis redis.UniversalClient
	// Prefix starts every key, so that deployments can share one Redis. It
	// must not contain braces, which would move the keys' hash tag. Default
	// "herald".
	Prefix string
	// Log receives the warnings about Redis being down. Default discard.
	Log *slog.Logger
}

// Limiter applies fixed-window rate limits per (scope, bucket, subject),
// counted in Redis when it has one and in memory otherwise. Its keys are
//
//	<prefix>:{<scope>}:rl:<bucket>:<subject>
//
// where scope is an app id, or GlobalScope for the buckets counted before
// the app is known; the hash tag keeps all of an app's keys in one Redis
// Cluster slot. Subjects outside a conservative set of characters, or
// longer than 64 bytes, are replaced by "~" and the base64url SHA-256 of
// the subject, which no plain subject can equal, so no subject can reach
// another's bucket.
//
// When Redis fails, a Limiter counts that call in memory under the same key
// and rate: each node then enforces the full rate on its own, so during an
// outage a cluster admits up to its node count times the rate, but it never
// admits everything. It asks Redis again after a second and uses it as soon
// as it answers. A Limiter is safe for concurrent use.
type Limiter struct {
	redis  limiter.Store // nil without Redis
	memory limiter.Store // the only store without Redis, the fallback with it
	log    *slog.Logger

	// probeEvery and warnEvery are redisProbeInterval and
	// redisWarnInterval; tests shorten them.
	probeEvery time.Duration
	warnEvery  time.Duration

	// retryAt is when (Unix ns) to ask Redis again after it failed; 0 while
	// Redis answers.
	retryAt atomic.Int64
	// lastWarn is when (Unix ns) a Redis failure was last logged.
	lastWarn atomic.Int64
}

// NewLimiter returns a Limiter. It does not touch Redis, so it works when
// Redis is down. It panics if opts.Prefix contains a brace.
func NewLimiter(opts LimiterOptions) *Limiter {
	if opts.Prefix == "" {
		opts.Prefix = defaultLimitPrefix
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		panic(fmt.Sprintf("authz: rate limit prefix %q contains a brace", opts.Prefix))
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	// The stores put "<prefix>:" before our keys, which is exactly the
	// layout we want; both use the same prefix so that a fallback count
	// lives under the same key as the Redis one.
	storeOpts := limiter.StoreOptions{
		Prefix:          opts.Prefix,
		CleanUpInterval: limiter.DefaultCleanUpInterval,
	}
	l := &Limiter{
		memory:     memorystore.NewStoreWithOptions(storeOpts),
		log:        opts.Log,
		probeEvery: redisProbeInterval,
		warnEvery:  redisWarnInterval,
	}
	if opts.Redis != nil {
		store, err := redisstore.NewStoreWithOptions(&lazyScripts{UniversalClient: opts.Redis}, storeOpts)
		if err != nil {
			// lazyScripts loads scripts without Redis, so the store cannot
			// fail to build.
			panic(fmt.Sprintf("authz: building the Redis rate limit store: %v", err))
		}
		l.redis = store
	}
	return l
}

// Take counts n events against (scope, bucket, subject) under rate and
// reports whether they fit. A rate with Limit <= 0 means unlimited: Allowed,
// no Redis call. An n below 1 counts as 1.
//
// Events that do not fit are counted all the same (and Remaining is 0): a
// client that keeps sending past its limit stays refused until the window
// ends, and a refusal costs one atomic round trip, with no second one to
// give the count back.
//
// The error is only for a caller's mistake: a scope that is neither an app
// id ([0-9a-z]{1,32}) nor GlobalScope, a bucket not of [a-z0-9_-]{1,32}, or a
// limited rate with a period under a millisecond. The Verdict then refuses.
// Redis being down is never an error: Take then counts in memory.
func (l *Limiter) Take(ctx context.Context, scope, bucket, subject string, rate Rate, n int64) (Verdict, error) {
	key, err := limitKey(scope, bucket, subject)
	if err != nil {
		return Verdict{Limit: rate.Limit}, err
	}
	if rate.Limit <= 0 {
		return Verdict{Allowed: true}, nil
	}
	// Redis keeps TTLs in milliseconds: a shorter period would set none and
	// block the key forever, and the memory store would never count.
	if rate.Period < time.Millisecond {
		return Verdict{Limit: rate.Limit}, fmt.Errorf("authz: rate limit period %v is under a millisecond", rate.Period)
	}
	c := l.increment(ctx, key, limiter.Rate{Limit: rate.Limit, Period: rate.Period}, max(n, 1))
	return Verdict{
		Allowed:   !c.Reached,
		Limit:     c.Limit,
		Remaining: c.Remaining,
		Reset:     time.Unix(c.Reset, 0).Add(time.Second),
	}, nil
}

// increment counts n against key in Redis if it is up, in memory otherwise.
func (l *Limiter) increment(ctx context.Context, key string, rate limiter.Rate, n int64) limiter.Context {
	if l.redis != nil && l.redisUp(time.Now()) {
		c, err := l.redis.Increment(ctx, key, n, rate)
		if err == nil {
			l.redisAnswered()
			return c
		}
		// A caller that gave up says nothing about Redis; its call still
		// gets a verdict from memory below.
		if ctx.Err() == nil {
			l.redisFailed(time.Now(), err)
		}
	}
	// The memory store never fails.
	c, _ := l.memory.Increment(ctx, key, n, rate)
	return c
}

// redisUp reports whether this call should ask Redis: always while it
// answers, and after a failure once per probe interval, by the one caller
// that wins the probe (the others stay in memory meanwhile).
func (l *Limiter) redisUp(now time.Time) bool {
	at := l.retryAt.Load()
	if at == 0 {
		return true
	}
	if now.UnixNano() < at {
		return false
	}
	return l.retryAt.CompareAndSwap(at, now.Add(l.probeEvery).UnixNano())
}

// redisAnswered ends a Redis outage, if there was one.
func (l *Limiter) redisAnswered() {
	// Load first so that the usual case (no outage) does not write to a
	// shared cache line on every call.
	if l.retryAt.Load() != 0 && l.retryAt.Swap(0) != 0 {
		l.log.Info("rate limiting: Redis answers again; limits are shared between nodes again")
	}
}

// redisFailed starts (or prolongs) a Redis outage and warns, at most once
// per warn interval.
func (l *Limiter) redisFailed(now time.Time, err error) {
	l.retryAt.Store(now.Add(l.probeEvery).UnixNano())
	last := l.lastWarn.Load()
	if last != 0 && now.UnixNano()-last < int64(l.warnEvery) {
		return
	}
	if l.lastWarn.CompareAndSwap(last, now.UnixNano()) {
		l.log.Warn("rate limiting: Redis failed; limiting per node in memory until it answers", "err", err)
	}
}

// limitKey returns the key of (scope, bucket, subject) without the prefix,
// which the stores add.
func limitKey(scope, bucket, subject string) (string, error) {
	// GlobalScope is itself of [0-9a-z]{1,32}.
	if !plain(scope, 32, isLowerAlnum) {
		return "", fmt.Errorf("authz: rate limit scope %q is neither an app id nor %q", scope, GlobalScope)
	}
	// Buckets hold no colon, so the subject is all that follows the
	// bucket's colon and no (bucket, subject) pair can pose as another.
	if !plain(bucket, 32, func(c byte) bool { return isLowerAlnum(c) || c == '-' || c == '_' }) {
		return "", fmt.Errorf("authz: rate limit bucket %q is not 1 to 32 characters of [a-z0-9_-]", bucket)
	}
	return "{" + scope + "}:rl:" + bucket + ":" + safeSubject(subject), nil
}

// safeSubject returns subject if it is short and of [A-Za-z0-9._@:-] (user
// ids, IPs, socket ids usually are), and otherwise "~" and its base64url
// SHA-256: "~" is outside that set, so a hashed subject never equals a plain
// one, and the hash keeps braces, newlines, glob characters and length out
// of keys.
func safeSubject(subject string) string {
	if plain(subject, maxPlainSubject, isSubjectChar) {
		return subject
	}
	sum := sha256.Sum256([]byte(subject))
	return "~" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// plain reports whether s has 1 to maxLen bytes, each accepted by ok.
func plain(s string, maxLen int, ok func(byte) bool) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := range len(s) {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

func isSubjectChar(c byte) bool {
	return isLowerAlnum(c) || 'A' <= c && c <= 'Z' || strings.IndexByte("._@:-", c) >= 0
}

// lazyScripts is the Redis client as the ulule store sees it. The store
// loads its Lua scripts when it is built — without a context, failing the
// build if Redis is down — and reloads them when Redis forgets them. Here
// loading only hashes the script locally, and running it sends EVALSHA,
// then EVAL if Redis does not know the script yet: building never touches
// Redis, and each call is still one EVALSHA once Redis has the script.
type lazyScripts struct {
	redis.UniversalClient
	scripts sync.Map // SHA-1 → *redis.Script
}

// ScriptLoad registers the script without asking Redis.
func (c *lazyScripts) ScriptLoad(ctx context.Context, src string) *redis.StringCmd {
	s := redis.NewScript(src)
	c.scripts.Store(s.Hash(), s)
	cmd := redis.NewStringCmd(ctx)
	cmd.SetVal(s.Hash())
	return cmd
}

// EvalSha runs a script registered by ScriptLoad, sending its source if
// Redis does not have it.
func (c *lazyScripts) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	s, ok := c.scripts.Load(sha)
	if !ok {
		return c.UniversalClient.EvalSha(ctx, sha, keys, args...)
	}
	return s.(*redis.Script).Run(ctx, c.UniversalClient, keys, args...)
}
