package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/services/protocol"
	"github.com/heraldrt/herald/tenants"
)

// Frontends without a WebSocket handshake (SSE, and the history endpoint)
// name their channels in the query. Public channels need nothing more;
// private, encrypted and presence channels need a stream token from the
// app's backend (authz.VerifyStreamToken) covering the exact channel list,
// passed as auth, with user_id and expires.

// streamGrant is what a frontend's query authorises.
type streamGrant struct {
	app      *tenants.App
	channels []string
	userID   string // from the stream token; "" without one
}

// httpError is an HTTP refusal with a message for the caller.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// maxStreamChannels bounds the channels of one stream request, before the
// app's own per-connection limit applies.
const maxStreamChannels = 100

// streamChannels reads the channel list: channels=a,b and, for names that
// hold a comma, repeated channel=.
func streamChannels(q url.Values) ([]string, error) {
	var out []string
	for _, list := range q["channels"] {
		for ch := range strings.SplitSeq(list, ",") {
			if ch != "" {
				out = append(out, ch)
			}
		}
	}
	out = append(out, q["channel"]...)
	switch {
	case len(out) == 0:
		return nil, &httpError{fiber.StatusBadRequest, "name at least one channel: ?channels=a,b"}
	case len(out) > maxStreamChannels:
		return nil, &httpError{fiber.StatusBadRequest, fmt.Sprintf("at most %d channels per stream", maxStreamChannels)}
	}
	for _, ch := range out {
		if !protocol.ValidChannelName(ch) {
			return nil, &httpError{fiber.StatusBadRequest, fmt.Sprintf("invalid channel name %q: use 1 to %d characters of A-Z a-z 0-9 _ - = @ , . ;", protocol.Shorten(ch, 200), protocol.MaxChannelNameLength)}
		}
		if protocol.KindOf(ch) == protocol.ServerToUser {
			return nil, &httpError{fiber.StatusForbidden, "#server-to-user- channels need a signed-in WebSocket connection"}
		}
	}
	return out, nil
}

// authorizeStream checks a stream query against the app of key.
func (n *Node) authorizeStream(ctx context.Context, key string, q url.Values, channels []string) (*streamGrant, error) {
	app, err := n.apps.AppByKey(ctx, key)
	switch {
	case errors.Is(err, tenants.ErrNotFound):
		return nil, &httpError{fiber.StatusNotFound, "could not find app by key " + protocol.Shorten(key, 64)}
	case err != nil:
		n.log.Error("app lookup failed", "err", err)
		return nil, &httpError{fiber.StatusServiceUnavailable, "temporarily unavailable, retry"}
	case !app.Active():
		return nil, &httpError{fiber.StatusForbidden, "app is disabled"}
	}
	// The user is whoever the token names; without a token, nobody (a
	// user_id of its own is not believed).
	g := &streamGrant{app: app, channels: channels}
	needsToken := false
	for _, ch := range channels {
		needsToken = needsToken || protocol.KindOf(ch) != protocol.Public
	}
	token := q.Get("auth")
	if !needsToken && token == "" {
		return g, nil
	}
	if token == "" {
		return nil, &httpError{fiber.StatusForbidden, "private, encrypted and presence channels need a stream token from the app's backend: auth, user_id and expires"}
	}
	expires, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return nil, &httpError{fiber.StatusBadRequest, "expires must be the token's expiry in Unix seconds"}
	}
	user := q.Get("user_id")
	if len(user) > maxUserIDLength {
		return nil, &httpError{fiber.StatusBadRequest, fmt.Sprintf("user_id is over %d characters", maxUserIDLength)}
	}
	if err := authz.VerifyStreamToken(app, token, channels, user, expires, time.Now()); err != nil {
		return nil, &httpError{fiber.StatusUnauthorized, "invalid stream token: " + err.Error()}
	}
	g.userID = user
	return g, nil
}

// HistoryHandler serves GET /app/:key/channels/:channel/events, a
// durable channel's events for frontends (the polling fallback for
// critical reads): the channel must be one the frontend may subscribe to.
func (n *Node) HistoryHandler() fiber.Handler {
	return func(c *fiber.Ctx) error {
		setCORS(c)
		q, err := url.ParseQuery(string(c.Request().URI().QueryString()))
		if err != nil {
			return fiber.NewError(fiber.StatusBadRequest, "malformed query")
		}
		channel := strings.Clone(c.Params("channel"))
		if _, err := streamChannels(url.Values{"channel": {channel}}); err != nil {
			return toFiber(err)
		}
		if _, err := n.limitHandshake(c); err != nil {
			return err
		}
		g, err := n.authorizeStream(c.UserContext(), strings.Clone(c.Params("key")), q, []string{channel})
		if err != nil {
			return toFiber(err)
		}
		subject := authz.Subject{UserID: g.userID}
		policy, err := n.policies.For(c.UserContext(), g.app.ID)
		if err != nil {
			return fiber.NewError(fiber.StatusServiceUnavailable, "temporarily unavailable, retry")
		}
		if !policy.Check(subject, channel, authz.ActionSubscribe).Allowed {
			return fiber.NewError(fiber.StatusForbidden, fmt.Sprintf("reading %q is denied by the app's channel policy", channel))
		}
		page, herr := n.ReadHistory(c.UserContext(), g.app, channel, HistoryQuery{AfterSeq: q.Get("after_seq"), Limit: q.Get("limit"), Epoch: q.Get("epoch")})
		if herr != nil {
			return c.Status(herr.Status).JSON(herr)
		}
		return c.JSON(page)
	}
}

// limitHandshake applies the per-IP rate of new connections to a request
// that opens one (a WebSocket, a stream) or reads history, before any other
// work, and returns the client's address.
func (n *Node) limitHandshake(c *fiber.Ctx) (netip.Addr, error) {
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	ip := n.cfg.TrustedProxies.ClientIP(peer, c.Get(fiber.HeaderXForwardedFor))
	v, err := n.AllowHandshake(c.UserContext(), ip.String())
	if err != nil {
		return ip, err
	}
	if !v.Allowed {
		return ip, &authz.LimitError{Limit: "ip_connections_per_minute", Verdict: v,
			Message: fmt.Sprintf("too many new connections from %s: at most %d per minute", ip, v.Limit)}
	}
	return ip, nil
}

func toFiber(err error) error {
	var he *httpError
	if errors.As(err, &he) {
		return fiber.NewError(he.status, he.msg)
	}
	return err
}

// setCORS lets any origin read the answer, without credentials: every app
// accepts every origin, and nothing here uses cookies.
func setCORS(c *fiber.Ctx) {
	c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
	c.Set(fiber.HeaderAccessControlAllowHeaders, "Last-Event-ID, Content-Type")
	c.Set(fiber.HeaderAccessControlAllowMethods, "GET, OPTIONS")
}

// HistoryQuery is a history request's parameters, as given.
type HistoryQuery struct {
	AfterSeq, Limit, Epoch string
}

// HistoryPage is the JSON answer of a history request.
type HistoryPage struct {
	Channel      string         `json:"channel"`
	Epoch        string         `json:"epoch"`
	Head         uint64         `json:"head"`
	OldestSeq    uint64         `json:"oldest_seq"`
	Events       []HistoryEvent `json:"events"`
	NextAfterSeq uint64         `json:"next_after_seq"`
	HasMore      bool           `json:"has_more"`
}

// HistoryEvent is one event of a HistoryPage.
type HistoryEvent struct {
	Seq         uint64 `json:"seq"`
	Event       string `json:"event"`
	Data        string `json:"data"`
	UserID      string `json:"user_id,omitempty"`
	PublishedAt string `json:"published_at"`
}

// HistoryError is a refused history request: a status, a message and,
// for a cursor the log cannot serve (410), the reason and where the log
// stands.
type HistoryError struct {
	Status    int    `json:"-"`
	Message   string `json:"error"`
	Reason    string `json:"reason,omitempty"`
	Epoch     string `json:"epoch,omitempty"`
	Head      uint64 `json:"head,omitempty"`
	OldestSeq uint64 `json:"oldest_seq,omitempty"`
}

// Default and largest page of a history request.
const (
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
)

// ReadHistory answers a history request for a durable channel of app.
func (n *Node) ReadHistory(ctx context.Context, app *tenants.App, channel string, q HistoryQuery) (*HistoryPage, *HistoryError) {
	if _, ok := app.Settings.DurableFor(channel); !ok {
		return nil, &HistoryError{Status: fiber.StatusNotFound, Message: fmt.Sprintf("channel %q is not durable: no pattern in the app's settings.durable matches it", channel)}
	}
	after, limit := uint64(0), defaultHistoryLimit
	var err error
	if q.AfterSeq != "" {
		if after, err = strconv.ParseUint(q.AfterSeq, 10, 64); err != nil {
			return nil, &HistoryError{Status: fiber.StatusBadRequest, Message: "after_seq must be a whole number"}
		}
	}
	if q.Limit != "" {
		if limit, err = strconv.Atoi(q.Limit); err != nil || limit < 1 || limit > maxHistoryLimit {
			return nil, &HistoryError{Status: fiber.StatusBadRequest, Message: fmt.Sprintf("limit must be between 1 and %d", maxHistoryLimit)}
		}
	}
	ctx, cancel := n.bounded(ctx)
	defer cancel()
	page, err := n.history.Read(ctx, app.ID, channel, after, limit)
	if err != nil {
		n.log.Error("history read failed", "app", app.ID, "err", err)
		return nil, &HistoryError{Status: fiber.StatusServiceUnavailable, Message: "the event log is temporarily unavailable, retry"}
	}
	stale := func(reason, msg string) *HistoryError {
		return &HistoryError{Status: fiber.StatusGone, Message: msg, Reason: reason, Epoch: page.Epoch, Head: page.Head, OldestSeq: page.Oldest}
	}
	switch {
	case q.Epoch != "" && q.Epoch != page.Epoch:
		return nil, stale(resumeEpochChanged, "the channel's history was reset since that cursor: its epoch is now "+strconv.Quote(page.Epoch)+"; re-sync from the app")
	case after > page.Head:
		return nil, stale(resumeAhead, fmt.Sprintf("after_seq %d is beyond the channel's last event (%d)", after, page.Head))
	case page.Oldest > after+1:
		return nil, stale(resumeExpired, fmt.Sprintf("events after %d are no longer kept (retention); the oldest kept is %d: re-sync from the app, or read from after_seq=%d", after, page.Oldest, page.Oldest-1))
	}
	out := &HistoryPage{Channel: channel, Epoch: page.Epoch, Head: page.Head, OldestSeq: page.Oldest, Events: make([]HistoryEvent, len(page.Events)), NextAfterSeq: after}
	for i, ev := range page.Events {
		out.Events[i] = HistoryEvent{Seq: ev.Seq, Event: ev.Event, Data: string(ev.Data), UserID: ev.UserID, PublishedAt: ev.Time.UTC().Format(time.RFC3339Nano)}
		out.NextAfterSeq = ev.Seq
	}
	out.HasMore = out.NextAfterSeq < page.Head
	return out, nil
}
