package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/presence"
	"github.com/heraldrt/herald/services/protocol"
)

// Presence and sign-in limits from Pusher's documentation.
const (
	maxUserIDLength = 128
	maxUserInfo     = 1024
	maxWatchlist    = 100
)

var (
	pongFrame = []byte(`{"event":"pusher:pong","data":"{}"}`)
)

// handleFrame runs one client frame. Every rejection is answered with the
// protocol's error and leaves the connection open.
func (n *Node) handleFrame(c *Client, raw []byte) {
	var f protocol.Frame
	if err := protocol.DecodeFrame(raw, &f); err != nil {
		c.sendError(0, "invalid message: "+err.Error())
		return
	}
	switch string(f.Event) {
	case "pusher:ping":
		c.Enqueue(pongFrame)
	case "pusher:pong":
		// Liveness was recorded when the frame arrived.
	case "pusher:subscribe":
		n.handleSubscribe(c, f.Data)
	case "pusher:unsubscribe":
		n.handleUnsubscribe(c, f.Data)
	case "pusher:signin":
		n.handleSignin(c, f.Data)
	case "herald:resume":
		n.handleResume(c, f.Data)
	default:
		if bytes.HasPrefix(f.Event, []byte("client-")) {
			n.handleClientEvent(c, &f)
			return
		}
		c.sendError(0, "unsupported event "+protocol.Shorten(string(f.Event), 64))
	}
}

func (c *Client) sendError(code int, msg string) {
	c.Enqueue(protocol.AppendError(nil, code, msg))
}

// rejectSubscription reports a refused subscription the way hosted Pusher
// and pusher-js expect: a connection-level pusher:error without a code, and
// a pusher:subscription_error on the channel for its handlers.
func (c *Client) rejectSubscription(channel string, status int, msg string) {
	c.rejected = rejection{status, msg}
	c.sendError(0, msg)
	c.Enqueue(subscriptionError(channel, "AuthError", status, msg))
	c.node.debugEvent(c.app.ID, debugEntry{Type: "subscription_error", SocketID: c.socketID, Channel: channel, Message: msg})
}

func (n *Node) handleSubscribe(c *Client, data []byte) {
	var d protocol.AuthData
	if err := protocol.DecodeAuthData(data, &d); err != nil || len(d.Channel) == 0 {
		c.sendError(0, "pusher:subscribe needs data {\"channel\",\"auth\"?,\"channel_data\"?}")
		return
	}
	channel := string(d.Channel)
	debug := channel == protocol.DebugChannel
	if !debug && !protocol.ValidChannelName(channel) {
		c.rejectSubscription(channel, 400, fmt.Sprintf("invalid channel name %q: use 1 to %d characters of A-Z a-z 0-9 _ - = @ , . ;", protocol.Shorten(channel, 200), protocol.MaxChannelNameLength))
		return
	}
	if s, ok := c.channels[channel]; ok {
		// pusher-js never repeats a subscribe; answer success again without
		// a second membership (or a move of a durable cursor).
		c.Enqueue(protocol.AppendSubscribed(nil, channel, n.subscribedData(c, s), s.dc != nil, s.epoch(), s.start))
		return
	}
	if limit := c.limits.MaxChannelsPerConnection; limit > 0 && len(c.channels) >= limit {
		n.meter.Rejected(c.app.ID, billing.RejectChannelsPerConn)
		c.rejectSubscription(channel, 429, fmt.Sprintf("subscription limit reached: at most %d channels per connection (max_channels_per_connection)", limit))
		return
	}
	s := &subscription{client: c, channel: channel}
	kind := protocol.KindOf(channel)
	switch kind {
	case protocol.Private, protocol.PrivateEncrypted:
		if kind == protocol.Private && len(d.Auth) == 0 && c.app.Settings.Features.PolicyAuthorizedPrivate {
			// The channel policy decides below, instead of a token.
			s.byPolicy = true
			break
		}
		if err := authz.VerifyChannelToken(c.app, d.Auth, c.socketID, d.Channel, d.ChannelData, d.HasChannelData); err != nil {
			c.rejectSubscription(channel, 401, tokenMessage(err, channel))
			return
		}
	case protocol.Presence:
		m, msg := n.presenceMember(c, &d)
		if msg != "" {
			c.rejectSubscription(channel, 401, msg)
			return
		}
		s.member = m
	case protocol.ServerToUser:
		id, _ := protocol.ServerToUserID(channel)
		if user := c.signedInUser(); user == "" || user != id {
			c.rejectSubscription(channel, 403, "a #server-to-user- channel needs a connection signed in as that user")
			return
		}
	}

	n.subscribe(c, s, debug, d.Auth)
}

// subscribe runs a subscription whose channel token (if any) checked out:
// the channel policy, the rate limit, the hub, presence, and
// subscription_succeeded. A refusal goes through c.rejectSubscription.
func (n *Node) subscribe(c *Client, s *subscription, debug bool, auth []byte) {
	channel := s.channel
	s.subject = c.subjectOf(s.member)
	switch {
	case debug:
		// Herald's own channel: the console's token is the check, not the
		// tenant's policy.
		if !n.debugTokenValid(c, auth) {
			c.rejectSubscription(channel, 403, "the debug stream needs a token from the console")
			return
		}
		n.debugSubscribed(c.app.ID)
	case !n.policyAllowsSubscribe(c, s):
		return
	}
	if !n.allowSubscribe(c) {
		n.meter.Rejected(c.app.ID, billing.RejectSubscribeRate)
		c.rejectSubscription(channel, 429, fmt.Sprintf("subscription rate limit exceeded: at most %d per second (subscriptions_per_second)", c.limits.SubscriptionsPerSecond))
		return
	}

	ctx, cancel := n.bounded(context.Background())
	defer cancel()
	if err := n.occupied.Add(ctx, c.app.ID, channel, 1); err != nil {
		n.log.Error("occupancy update failed", "app", c.app.ID, "err", err)
		c.rejectSubscription(channel, 503, "temporarily unable to subscribe, retry")
		return
	}
	_, durable := c.app.Settings.DurableFor(channel)
	durable = durable && !debug
	// A durable subscription skips live events until subscription_succeeded
	// sets its cursor.
	s.replaying = durable
	c.channels[channel] = s
	if n.hub.add(c.app.ID, s) {
		if err := n.broker.Subscribe(ctx, c.app.ID, channel); err != nil {
			n.log.Error("broker subscribe failed", "app", c.app.ID, "err", err)
			n.dropSubscription(c, s)
			c.rejectSubscription(channel, 503, "temporarily unable to subscribe, retry")
			return
		}
		n.events.ChannelOccupied(c.app.ID, channel)
	}
	if durable {
		dc, err := n.joinDurable(ctx, channelKey{c.app.ID, channel})
		if err != nil {
			n.log.Error("durable channel: reading the log failed", "app", c.app.ID, "err", err)
			n.dropSubscription(c, s)
			c.rejectSubscription(channel, 503, "temporarily unable to subscribe, retry")
			return
		}
		c.mu.Lock() // broadcasts read it
		s.dc = dc
		c.mu.Unlock()
	}
	if s.member != nil {
		first, err := n.presence.Join(ctx, c.app.ID, channel, c.socketID, *s.member, c.limits.MaxPresenceMembers)
		if err != nil {
			n.dropSubscription(c, s)
			if errors.Is(err, presence.ErrFull) {
				n.meter.Rejected(c.app.ID, billing.RejectPresenceFull)
				c.rejectSubscription(channel, 403, fmt.Sprintf("presence channel is full: at most %d members (max_presence_members)", c.limits.MaxPresenceMembers))
			} else {
				n.log.Error("presence join failed", "app", c.app.ID, "err", err)
				c.rejectSubscription(channel, 503, "temporarily unable to join the presence channel, retry")
			}
			return
		}
		n.trackPresence(c.app.ID, channel, c.socketID, s.member)
		if first {
			n.memberAdded(c.app.ID, channel, *s.member, c.socketID)
		}
	}
	n.sendSubscribed(c, s)
}

// policyAllowsSubscribe runs the app's channel policy on a subscription
// whose signature (if any) checked out, and refuses it if the policy
// denies it. A policy can only narrow what the tenant's signature allowed,
// except for a private channel the app lets the policy authorise: that
// needs a signed-in user and an allow rule naming the user or a role.
func (n *Node) policyAllowsSubscribe(c *Client, s *subscription) bool {
	policy, err := n.policyFor(c)
	if err != nil {
		c.rejectSubscription(s.channel, 503, "temporarily unable to subscribe, retry")
		return false
	}
	d := policy.Check(s.subject, s.channel, authz.ActionSubscribe)
	if s.byPolicy && (c.signedInUser() == "" || !d.Explicit()) {
		n.meter.Rejected(c.app.ID, billing.RejectPolicy)
		c.rejectSubscription(s.channel, 401, fmt.Sprintf("invalid auth for channel %q: a private channel needs an auth token, or a signed-in user whom a channel policy rule allows by name or role", s.channel))
		return false
	}
	if !d.Allowed {
		n.meter.Rejected(c.app.ID, billing.RejectPolicy)
		c.rejectSubscription(s.channel, 403, fmt.Sprintf("subscription to %q denied by the app's channel policy", s.channel))
		return false
	}
	return true
}

func tokenMessage(err error, channel string) string {
	return fmt.Sprintf("invalid auth for channel %q: %v", channel, err)
}

type memberJSON struct {
	UserID   string          `json:"user_id"`
	UserInfo json.RawMessage `json:"user_info,omitempty"`
}

// presenceMember verifies a presence subscription and returns the member,
// or a message saying why it is refused. The member comes from the signed
// channel_data, or, without channel_data, from the signed-in user.
func (n *Node) presenceMember(c *Client, d *protocol.AuthData) (*presence.Member, string) {
	channel := string(d.Channel)
	if !d.HasChannelData {
		user := c.signedInUser()
		if user == "" {
			return nil, "a presence subscription needs channel_data, or a connection signed in first"
		}
		if err := authz.VerifyChannelToken(c.app, d.Auth, c.socketID, d.Channel, nil, false); err != nil {
			return nil, tokenMessage(err, channel)
		}
		return &presence.Member{UserID: user, UserInfo: c.userInfo}, ""
	}
	if err := authz.VerifyChannelToken(c.app, d.Auth, c.socketID, d.Channel, d.ChannelData, true); err != nil {
		return nil, tokenMessage(err, channel)
	}
	var cd struct {
		UserID   json.RawMessage `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info"`
	}
	if err := json.Unmarshal(d.ChannelData, &cd); err != nil {
		return nil, "channel_data must be a JSON object with user_id"
	}
	id, ok := userIDString(cd.UserID)
	if !ok || id == "" || len(id) > maxUserIDLength {
		return nil, fmt.Sprintf("channel_data.user_id must be a non-empty string or number of at most %d characters", maxUserIDLength)
	}
	if len(cd.UserInfo) > maxUserInfo {
		return nil, fmt.Sprintf("channel_data.user_info is over %d bytes", maxUserInfo)
	}
	if string(cd.UserInfo) == "null" {
		cd.UserInfo = nil
	}
	return &presence.Member{UserID: id, UserInfo: cd.UserInfo}, ""
}

// userIDString accepts a user id given as a JSON string or number (Pusher
// allows numeric ids such as 10) and returns its string form.
func userIDString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var num json.Number
	if json.Unmarshal(raw, &num) == nil {
		return num.String(), true
	}
	return "", false
}

// sendSubscribed confirms a new subscription; presence channels get the
// member list, which includes the subscriber. A durable subscription gets
// its cursor here, at the position announced, or at the client's own
// cursor when a herald:resume came before the subscribe.
func (n *Node) sendSubscribed(c *Client, s *subscription) {
	data := n.subscribedData(c, s)
	s.accepted = true
	n.debugEvent(c.app.ID, debugEntry{Type: "subscribed", SocketID: c.socketID, Channel: s.channel, UserID: s.subject.UserID})
	if s.dc == nil {
		delete(c.cursors, s.channel) // a cursor for a channel that is not durable
		c.Enqueue(protocol.AppendSubscribed(nil, s.channel, data, false, "", 0))
		return
	}
	if from, ok := c.cursors[s.channel]; ok {
		delete(c.cursors, s.channel)
		n.resume(c, s, from, data)
		return
	}
	dc := s.dc
	dc.mu.Lock()
	c.mu.Lock()
	s.start = dc.next - 1
	s.next, s.replaying, s.missed = dc.next, false, false
	c.enqueueLocked(protocol.AppendSubscribed(nil, s.channel, data, true, dc.epoch, s.start))
	c.mu.Unlock()
	dc.mu.Unlock()
}

// subscribedData is the data of subscription_succeeded: {} or, on a
// presence channel, the members.
func (n *Node) subscribedData(c *Client, s *subscription) []byte {
	if s.member == nil {
		return []byte("{}")
	}
	ctx, cancel := n.bounded(context.Background())
	members, err := n.presence.Members(ctx, c.app.ID, s.channel)
	cancel()
	if err != nil {
		n.log.Error("presence members failed", "app", c.app.ID, "err", err)
	}
	return presenceData(members)
}

func presenceData(members []presence.Member) []byte {
	type presenceJSON struct {
		IDs   []string                   `json:"ids"`
		Hash  map[string]json.RawMessage `json:"hash"`
		Count int                        `json:"count"`
	}
	p := presenceJSON{IDs: make([]string, 0, len(members)), Hash: make(map[string]json.RawMessage, len(members)), Count: len(members)}
	for _, m := range members {
		p.IDs = append(p.IDs, m.UserID)
		info := m.UserInfo
		if len(info) == 0 {
			info = json.RawMessage("null")
		}
		p.Hash[m.UserID] = info
	}
	data, _ := json.Marshal(struct {
		Presence presenceJSON `json:"presence"`
	}{p})
	return data
}

func (n *Node) handleUnsubscribe(c *Client, data []byte) {
	var d protocol.AuthData
	if err := protocol.DecodeAuthData(data, &d); err != nil || len(d.Channel) == 0 {
		c.sendError(0, "pusher:unsubscribe needs data {\"channel\"}")
		return
	}
	if s, ok := c.channels[string(d.Channel)]; ok {
		n.unsubscribe(c, s)
	}
}

// unsubscribe removes a subscription with everything it entails.
func (n *Node) unsubscribe(c *Client, s *subscription) {
	n.dropSubscription(c, s)
	n.debugEvent(c.app.ID, debugEntry{Type: "unsubscribed", SocketID: c.socketID, Channel: s.channel})
	if s.member == nil {
		return
	}
	n.trackPresence(c.app.ID, s.channel, c.socketID, nil)
	ctx, cancel := n.bounded(context.Background())
	last, err := n.presence.Leave(ctx, c.app.ID, s.channel, c.socketID, s.member.UserID)
	cancel()
	if err != nil {
		n.log.Error("presence leave failed", "app", c.app.ID, "err", err)
		return
	}
	if last {
		n.memberRemoved(c.app.ID, s.channel, s.member.UserID, c.socketID)
	}
}

// dropSubscription takes s out of the client and the hub, and out of the
// broker when it was the channel's last local subscriber.
func (n *Node) dropSubscription(c *Client, s *subscription) {
	delete(c.channels, s.channel)
	if s.dc != nil {
		n.leaveDurable(s.dc)
	}
	ctx, cancel := n.bounded(context.Background())
	defer cancel()
	if err := n.occupied.Add(ctx, c.app.ID, s.channel, -1); err != nil {
		n.log.Error("occupancy update failed", "app", c.app.ID, "err", err)
	}
	if !n.hub.remove(c.app.ID, s) {
		return
	}
	n.events.ChannelVacated(c.app.ID, s.channel)
	if err := n.broker.Unsubscribe(ctx, c.app.ID, s.channel); err != nil {
		n.log.Error("broker unsubscribe failed", "app", c.app.ID, "err", err)
	}
}

// memberAdded announces a user's arrival on a presence channel to its other
// subscribers (exclude is the joining connection) and to the event sink.
func (n *Node) memberAdded(appID, channel string, m presence.Member, exclude string) {
	data, _ := json.Marshal(memberJSON{UserID: m.UserID, UserInfo: m.UserInfo})
	n.publishInternal(appID, channel, "pusher_internal:member_added", data, exclude)
	n.events.MemberAdded(appID, channel, m.UserID)
}

// memberRemoved announces that a user's last connection left.
func (n *Node) memberRemoved(appID, channel, userID, exclude string) {
	data, _ := json.Marshal(memberJSON{UserID: userID})
	n.publishInternal(appID, channel, "pusher_internal:member_removed", data, exclude)
	n.events.MemberRemoved(appID, channel, userID)
}

func (n *Node) publishInternal(appID, channel, event string, data []byte, exclude string) {
	ctx, cancel := n.bounded(context.Background())
	defer cancel()
	if err := n.broker.Publish(ctx, appID, channel, &broker.Publication{Event: event, Data: data, ExcludeSocketID: exclude}); err != nil {
		n.log.Error("broker publish failed", "app", appID, "event", event, "err", err)
	}
}

// bounded gives a broker or store call its deadline.
func (n *Node) bounded(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, n.cfg.BrokerTimeout)
}

func (n *Node) handleSignin(c *Client, data []byte) {
	var d protocol.AuthData
	if err := protocol.DecodeAuthData(data, &d); err != nil || d.UserData == nil {
		c.sendError(0, "pusher:signin needs data {\"auth\",\"user_data\"}")
		return
	}
	if err := authz.VerifyUserToken(c.app, d.Auth, c.socketID, d.UserData); err != nil {
		c.sendError(0, "sign-in refused: "+err.Error())
		return
	}
	var ud struct {
		ID        json.RawMessage `json:"id"`
		UserInfo  json.RawMessage `json:"user_info"`
		Watchlist []string        `json:"watchlist"`
	}
	if err := json.Unmarshal(d.UserData, &ud); err != nil {
		c.sendError(0, "sign-in refused: user_data must be a JSON object with a string id")
		return
	}
	var id string
	if json.Unmarshal(ud.ID, &id) != nil || id == "" || len(id) > maxUserIDLength {
		c.sendError(0, fmt.Sprintf("sign-in refused: user_data.id must be a non-empty string of at most %d characters", maxUserIDLength))
		return
	}
	if len(ud.UserInfo) > maxUserInfo {
		c.sendError(0, fmt.Sprintf("sign-in refused: user_data.user_info is over %d bytes", maxUserInfo))
		return
	}
	if c.signedInUser() != "" {
		// A connection is one user for its whole life (TOK-3); pusher-js
		// signs in again only on a new connection.
		c.sendError(0, "sign-in refused: this connection is already signed in")
		return
	}
	ctx, cancel := n.bounded(context.Background())
	ok, err := n.conns.Acquire(ctx, c.app.ID, userSlot(id), c.limits.MaxConnectionsPerUser)
	cancel()
	if err != nil {
		n.log.Error("user connection quota check failed", "app", c.app.ID, "err", err)
		c.sendError(0, "sign-in failed: temporarily unavailable, retry")
		return
	}
	if !ok {
		n.meter.Rejected(c.app.ID, billing.RejectUserConnections)
		msg := fmt.Sprintf("user is over its connection quota (max_connections_per_user %d)", c.limits.MaxConnectionsPerUser)
		c.sendError(protocol.CodeOverCapacity, msg)
		c.Close(protocol.CodeOverCapacity, msg)
		return
	}
	c.mu.Lock()
	c.userID = id
	c.mu.Unlock()
	c.userSlot = true
	c.userInfo = ud.UserInfo
	c.roles = rolesOf(ud.UserInfo)
	n.mu.Lock()
	k := userKey{c.app.ID, id}
	if n.users[k] == nil {
		n.users[k] = map[*Client]struct{}{}
	}
	n.users[k][c] = struct{}{}
	n.mu.Unlock()
	success, _ := json.Marshal(struct {
		UserData string `json:"user_data"`
	}{string(d.UserData)})
	c.Enqueue(protocol.AppendEvent(nil, "pusher:signin_success", "", success, ""))
	if len(ud.Watchlist) > maxWatchlist {
		c.sendError(protocol.CodeWatchlistLimit, fmt.Sprintf("watchlist has more than %d user ids; the first %d were kept", maxWatchlist, maxWatchlist))
	}
}

func (n *Node) handleClientEvent(c *Client, f *protocol.Frame) {
	channel := string(f.Channel)
	limits := c.limits
	switch {
	case !c.app.Settings.Features.ClientEventsEnabled():
		c.sendError(0, "Client event rejected - client events are not enabled for this app")
		return
	case len(f.Event) > protocol.MaxEventNameLength:
		c.sendError(0, fmt.Sprintf("Client event rejected - event name is longer than %d characters", protocol.MaxEventNameLength))
		return
	case !protocol.KindOf(channel).AllowsClientEvents():
		c.sendError(0, "Client event rejected - only supported on private and presence channels")
		return
	}
	s, ok := c.channels[channel]
	if !ok || !s.accepted {
		c.sendError(0, "Client event rejected - not subscribed to channel "+protocol.Shorten(channel, 200))
		return
	}
	data := f.Data
	if str, ok := protocol.StringValue(data); ok {
		data = str
	}
	if len(data) > limits.MaxPayloadBytes {
		c.sendError(0, fmt.Sprintf("Client event rejected - data is over %d bytes", limits.MaxPayloadBytes))
		return
	}
	policy, err := n.policyFor(c)
	if err != nil {
		c.sendError(0, "Client event rejected - temporarily unavailable, retry")
		return
	}
	if !policy.Check(s.subject, channel, authz.ActionClientEvent).Allowed {
		n.meter.Rejected(c.app.ID, billing.RejectPolicy)
		c.sendError(0, "Client event rejected - denied by the app's channel policy on channel "+protocol.Shorten(channel, 200))
		return
	}
	if !n.allowClientEvent(c) {
		n.meter.Rejected(c.app.ID, billing.RejectClientEventRate)
		c.sendError(protocol.CodeClientEventRateLimit, fmt.Sprintf("Client event rejected - rate limit of %d per second exceeded (client_events_per_second)", limits.ClientEventsPerSecond))
		return
	}
	pub := &broker.Publication{Event: string(f.Event), Data: bytes.Clone(data), ExcludeSocketID: c.socketID}
	if s.member != nil {
		pub.UserID = s.member.UserID
	}
	ctx, cancel := n.bounded(context.Background())
	defer cancel()
	if err := n.broker.Publish(ctx, c.app.ID, channel, pub); err != nil {
		n.log.Error("broker publish failed", "app", c.app.ID, "err", err)
		c.sendError(0, "Client event rejected - temporarily unavailable, retry")
		return
	}
	n.meter.Published(c.app.ID, 1)
	n.events.ClientEvent(c.app.ID, channel, pub.Event, pub.Data, c.socketID, pub.UserID)
	// Checked first: copying the payload for the entry costs an
	// allocation that a stream nobody watches should not.
	if n.debugWatched(c.app.ID) {
		n.debugEvent(c.app.ID, debugEntry{Type: "client_event", SocketID: c.socketID, Channel: channel, Event: pub.Event, Data: string(pub.Data), UserID: pub.UserID})
	}
}
