package main

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/heraldrt/herald/authz"
)

// TestHostileTenant runs the rows of docs/security.md that one tenant could
// use against another, or a client against a user, on one node with two
// apps.
func TestHostileTenant(t *testing.T) {
	t.Parallel()
	appA := cred{"a1", "keya", "secreta"}
	appB := cred{"b2", "keyb", "secretb"}
	m := startMain(t, testConfig(appsJSON(appJSON(appA, "", ""), appJSON(appB, "", ""))))

	t.Run("ISO1_KeyOfAOnAppB", func(t *testing.T) {
		subB := dial(t, m.Addr, appB.Key)
		subB.subscribeOK("iso1", "", "")

		// A's key and secret signing requests to B's paths.
		body := []byte(`{"name":"stolen","data":"x","channels":["iso1"]}`)
		for _, r := range []restResponse{
			signedRequest(t, m.Addr, appA, http.MethodPost, "/apps/"+appB.ID+"/events", nil, body),
			signedRequest(t, m.Addr, appA, http.MethodPost, "/apps/"+appB.ID+"/batch_events", nil, []byte(`{"batch":[{"channel":"iso1","name":"stolen","data":"x"}]}`)),
			signedRequest(t, m.Addr, appA, http.MethodGet, "/apps/"+appB.ID+"/channels", nil, nil),
			signedRequest(t, m.Addr, appA, http.MethodGet, "/apps/"+appB.ID+"/channels/iso1", nil, nil),
			signedRequest(t, m.Addr, appA, http.MethodPost, "/apps/"+appB.ID+"/users/u/terminate_connections", nil, []byte(`{}`)),
			// A's key with B's secret, and B's key with A's secret.
			signedRequest(t, m.Addr, cred{appB.ID, appA.Key, appB.Secret}, http.MethodPost, "/apps/"+appB.ID+"/events", nil, body),
			signedRequest(t, m.Addr, cred{appB.ID, appB.Key, appA.Secret}, http.MethodPost, "/apps/"+appB.ID+"/events", nil, body),
		} {
			if r.Status != http.StatusUnauthorized {
				t.Errorf("A's credentials on B: status %d, want 401 (body %s)", r.Status, r.Body)
			}
			r.errorMessage(t)
		}
		publish(t, m.Addr, appB, "iso1", "marker", "m", "")
		noneOf(t, subB.until("marker", "iso1"), "event published with A's credentials", isEvent("stolen", "iso1"))

		// A's private-channel token presented on a B connection, signed
		// for that very connection.
		connB := dial(t, m.Addr, appB.Key)
		if e := connB.subscribeRefused("private-iso1", authz.ChannelToken(appA.tenantsKey(), connB.SocketID, "private-iso1", ""), ""); e.Status != 401 {
			t.Fatalf("A's token on B: status %d, want 401", e.Status)
		}
		// B's key name with A's secret.
		if e := connB.subscribeRefused("private-iso1", appB.Key+":"+hmacHex(appA.Secret, connB.SocketID+":private-iso1"), ""); e.Status != 401 {
			t.Fatalf("B's key with A's signature: status %d, want 401", e.Status)
		}
		// Presence too.
		cd := `{"user_id":"intruder"}`
		connB.subscribeRefused("presence-iso1", handChannelToken(appA, connB.SocketID, "presence-iso1", cd), cd)
		// A's key on B's WebSocket endpoint path is just another app.
		connA := dial(t, m.Addr, appA.Key)
		connA.subscribeOK("private-iso1", handChannelToken(appA, connA.SocketID, "private-iso1", ""), "")
		connB.subscribeOK("private-iso1", handChannelToken(appB, connB.SocketID, "private-iso1", ""), "")
	})

	t.Run("ISO2_SameChannelNames", func(t *testing.T) {
		a := dial(t, m.Addr, appA.Key)
		b := dial(t, m.Addr, appB.Key)
		cdA, cdB := `{"user_id":"ua","user_info":{"app":"A"}}`, `{"user_id":"ub","user_info":{"app":"B"}}`
		presA := a.subscribeOK("presence-room", authz.ChannelToken(appA.tenantsKey(), a.SocketID, "presence-room", cdA), cdA)
		presB := b.subscribeOK("presence-room", authz.ChannelToken(appB.tenantsKey(), b.SocketID, "presence-room", cdB), cdB)
		for _, tc := range []struct {
			f    frame
			want string
		}{{presA, "ua"}, {presB, "ub"}} {
			var p struct {
				Presence struct {
					IDs   []string `json:"ids"`
					Count int      `json:"count"`
				} `json:"presence"`
			}
			tc.f.decodeData(t, &p)
			if p.Presence.Count != 1 || !slices.Equal(p.Presence.IDs, []string{tc.want}) {
				t.Fatalf("member list %s: want only %s", tc.f.data(), tc.want)
			}
		}
		a.subscribeOK("shared", "", "")
		b.subscribeOK("shared", "", "")

		publish(t, m.Addr, appA, "shared", "from-a", "A", "")
		publish(t, m.Addr, appA, "presence-room", "from-a", "A", "")
		publish(t, m.Addr, appB, "shared", "from-b", "B", "")
		publish(t, m.Addr, appB, "presence-room", "from-b", "B", "")
		publish(t, m.Addr, appA, "shared", "marker", "", "")
		publish(t, m.Addr, appB, "shared", "marker", "", "")
		framesA, framesB := a.until("marker", "shared"), b.until("marker", "shared")
		noneOf(t, framesA, "B's event or member on A", func(f frame) bool {
			return f.Event == "from-b" || strings.HasPrefix(f.Event, "pusher_internal:member_") || strings.Contains(f.raw, `ub\"`)
		})
		noneOf(t, framesB, "A's event or member on B", func(f frame) bool {
			return f.Event == "from-a" || strings.HasPrefix(f.Event, "pusher_internal:member_") || strings.Contains(f.raw, `ua\"`)
		})
		for _, tc := range []struct {
			frames []frame
			event  string
		}{{framesA, "from-a"}, {framesB, "from-b"}} {
			var got []string
			for _, f := range tc.frames {
				if f.Event == tc.event {
					got = append(got, f.Channel)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, []string{"presence-room", "shared"}) {
				t.Fatalf("own events %s arrived on %v, want presence-room and shared", tc.event, got)
			}
		}

		for _, tc := range []struct {
			c    cred
			want string
		}{{appA, "ua"}, {appB, "ub"}} {
			r := signedRequest(t, m.Addr, tc.c, http.MethodGet, "/apps/"+tc.c.ID+"/channels/presence-room/users", nil, nil)
			if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"users":[{"id":"`+tc.want+`"}]}` {
				t.Fatalf("users of %s: status %d, body %s, want only %s", tc.c.ID, r.Status, r.Body, tc.want)
			}
			info := channelInfo(t, m.Addr, tc.c, "presence-room", "user_count,subscription_count")
			if info["user_count"] != float64(1) || info["subscription_count"] != float64(1) {
				t.Fatalf("channel info of %s: %v, want user_count 1 and subscription_count 1", tc.c.ID, info)
			}
		}

		// Leaving on A is not seen on B.
		a.send(map[string]any{"event": "pusher:unsubscribe", "data": map[string]string{"channel": "presence-room"}})
		a.ping()
		publish(t, m.Addr, appB, "presence-room", "marker", "", "")
		noneOf(t, b.until("marker", "presence-room"), "A's member_removed on B", isEvent("pusher_internal:member_removed", "presence-room"))
	})

	t.Run("ISO2_SocketIDExclusionScoped", func(t *testing.T) {
		a := dial(t, m.Addr, appA.Key)
		b := dial(t, m.Addr, appB.Key)
		a.subscribeOK("excl", "", "")
		b.subscribeOK("excl", "", "")
		if a.SocketID == b.SocketID {
			t.Fatalf("two connections share socket_id %s", a.SocketID)
		}
		// Publishing to B with A's socket_id excludes nobody in B.
		publish(t, m.Addr, appB, "excl", "to-b", "x", a.SocketID)
		b.expectEvent("to-b", "excl")
		// And a B socket_id given to A excludes nobody in A.
		publish(t, m.Addr, appA, "excl", "to-a", "x", b.SocketID)
		a.expectEvent("to-a", "excl")
		// Control: A's own socket_id does exclude it.
		publish(t, m.Addr, appA, "excl", "not-for-a", "x", a.SocketID)
		publish(t, m.Addr, appA, "excl", "marker", "", "")
		noneOf(t, a.until("marker", "excl"), "excluded event", isEvent("not-for-a", "excl"))
	})

	t.Run("ISO4_ClientEventBucketsPerApp", func(t *testing.T) {
		// A exhausts its client-event rate limit; B's connections still get
		// their full allowance.
		a1, a2 := dial(t, m.Addr, appA.Key), dial(t, m.Addr, appA.Key)
		b1, b2 := dial(t, m.Addr, appB.Key), dial(t, m.Addr, appB.Key)
		for _, c := range []struct {
			w   *wsConn
			app cred
		}{{a1, appA}, {a2, appA}, {b1, appB}, {b2, appB}} {
			c.w.subscribeOK("private-rl", handChannelToken(c.app, c.w.SocketID, "private-rl", ""), "")
		}
		drainThenSend(t, a1, b1, b2, "private-rl")
	})

	t.Run("ISO4_UserBucketsPerApp", func(t *testing.T) {
		// The same user id signed in on A and on B: A's user drains its
		// shared client-event bucket; B's user of that name keeps its own.
		ud := `{"id":"same-user"}`
		signed := func(c cred) *wsConn {
			w := dial(t, m.Addr, c.Key)
			w.signin(c.Key+":"+hmacHex(c.Secret, w.SocketID+"::user::"+ud), ud)
			w.subscribeOK("private-rlu", handChannelToken(c, w.SocketID, "private-rlu", ""), "")
			return w
		}
		a, b, bPeer := signed(appA), signed(appB), dial(t, m.Addr, appB.Key)
		bPeer.subscribeOK("private-rlu", handChannelToken(appB, bPeer.SocketID, "private-rlu", ""), "")
		drainThenSend(t, a, b, bPeer, "private-rlu")
	})

	t.Run("TOK1_TokenBoundToSocket", func(t *testing.T) {
		x := dial(t, m.Addr, appA.Key)
		y := dial(t, m.Addr, appA.Key)
		// Computed independently of authz, then checked against it.
		tokenX := handChannelToken(appA, x.SocketID, "private-tok", "")
		if tokenX != authz.ChannelToken(appA.tenantsKey(), x.SocketID, "private-tok", "") {
			t.Fatalf("authz.ChannelToken disagrees with HMAC-SHA256(secret, socket_id:channel)")
		}
		if e := y.subscribeRefused("private-tok", tokenX, ""); e.Status != 401 {
			t.Fatalf("X's token on Y: status %d, want 401", e.Status)
		}
		cd := `{"user_id":"u"}`
		y.subscribeRefused("presence-tok", handChannelToken(appA, x.SocketID, "presence-tok", cd), cd)
		// A token for another channel, or with channel_data swapped.
		y.subscribeRefused("private-tok", handChannelToken(appA, y.SocketID, "private-other", ""), "")
		y.subscribeRefused("presence-tok", handChannelToken(appA, y.SocketID, "presence-tok", cd), `{"user_id":"admin"}`)
		// Upper-case hex is the same signature.
		x.subscribeOK("private-tok", appA.Key+":"+strings.ToUpper(strings.TrimPrefix(tokenX, appA.Key+":")), "")
		// A token replayed on a new connection after X has gone.
		x.close()
		z := dial(t, m.Addr, appA.Key)
		z.subscribeRefused("private-tok", tokenX, "")
		// Malformed tokens.
		for _, tok := range []string{"", "keya", ":" + strings.Repeat("0", 64), appA.Key + ":nothex", appA.Key + ":" + strings.Repeat("0", 64)} {
			z.subscribeRefused("private-tok", tok, "")
		}
	})

	t.Run("TOK3_ServerToUser", func(t *testing.T) {
		const victimChannel = "#server-to-user-victim"
		unsigned := dial(t, m.Addr, appA.Key)
		if e := unsigned.subscribeRefused(victimChannel, "", ""); e.Status != 403 {
			t.Fatalf("unsigned subscribe to %s: status %d, want 403", victimChannel, e.Status)
		}

		mallory := dial(t, m.Addr, appA.Key)
		malloryData := `{"id":"mallory"}`
		mallory.signin(appA.Key+":"+hmacHex(appA.Secret, mallory.SocketID+"::user::"+malloryData), malloryData)
		mallory.subscribeRefused(victimChannel, "", "")
		// Even with a channel token for it.
		mallory.subscribeRefused(victimChannel, handChannelToken(appA, mallory.SocketID, victimChannel, ""), "")

		// A second sign-in as another user is refused, even with a valid
		// token for it.
		victimData := `{"id":"victim"}`
		mallory.send(map[string]any{"event": "pusher:signin", "data": map[string]string{
			"auth": authz.UserToken(appA.tenantsKey(), mallory.SocketID, victimData), "user_data": victimData}})
		if e := mallory.expectError(); e.Code != nil {
			t.Fatalf("second sign-in refused with code %d, want null", *e.Code)
		}
		mallory.subscribeRefused(victimChannel, "", "")
		mallory.subscribeOK("#server-to-user-mallory", "", "")

		// A sign-in with a token for another socket is refused.
		other := dial(t, m.Addr, appA.Key)
		other.send(map[string]any{"event": "pusher:signin", "data": map[string]string{
			"auth": authz.UserToken(appA.tenantsKey(), mallory.SocketID, victimData), "user_data": victimData}})
		other.expectError()
		other.subscribeRefused(victimChannel, "", "")

		// Events for the victim reach the victim, not mallory.
		victim := dial(t, m.Addr, appA.Key)
		victim.signin(authz.UserToken(appA.tenantsKey(), victim.SocketID, victimData), victimData)
		victim.subscribeOK(victimChannel, "", "")
		publish(t, m.Addr, appA, victimChannel, "private-note", "for victim", "")
		if f := victim.expectEvent("private-note", victimChannel); f.data() != "for victim" {
			t.Fatalf("victim got %s", f)
		}
		publish(t, m.Addr, appA, "#server-to-user-mallory", "marker", "", "")
		noneOf(t, mallory.until("marker", "#server-to-user-mallory"), "victim's event on mallory", func(f frame) bool { return f.Event == "private-note" })

		// Terminating the victim leaves mallory connected, and vice versa.
		path := "/apps/" + appA.ID + "/users/victim/terminate_connections"
		if r := signedRequest(t, m.Addr, appA, http.MethodPost, path, nil, []byte(`{}`)); r.Status != 200 {
			t.Fatalf("terminate: %d %s", r.Status, r.Body)
		}
		victim.expectClosed(4009, waitTimeout)
		mallory.ping()
		// B terminating "mallory" does not touch A's mallory.
		if r := signedRequest(t, m.Addr, appB, http.MethodPost, "/apps/"+appB.ID+"/users/mallory/terminate_connections", nil, []byte(`{}`)); r.Status != 200 {
			t.Fatalf("terminate on B: %d %s", r.Status, r.Body)
		}
		noneOf(t, mallory.ping(), "termination from app B", func(f frame) bool { return f.Event == "pusher:error" })
	})

	t.Run("TOK6_SameKeyStringTwoApps", func(t *testing.T) {
		// Keys are unique across apps, so two apps cannot share a key
		// string: configuring it is refused with an error naming the key.
		cfg := testConfig(appsJSON(appJSON(cred{"x1", "samekey", "s1"}, "", ""), appJSON(cred{"x2", "samekey", "s2"}, "", "")))
		m2 := &Main{Config: cfg}
		err := m2.Run(context.Background())
		defer m2.Close()
		if err == nil {
			t.Fatal("Run accepted two apps with the same key")
		}
		if !strings.Contains(err.Error(), "samekey") {
			t.Fatalf("Run error %q does not name the key", err)
		}
	})

	// A's REST credentials cannot even list B's channels by guessing a
	// path that names A but reads B: the app is resolved from the path.
	t.Run("ISO1_PathNamesTheApp", func(t *testing.T) {
		b := dial(t, m.Addr, appB.Key)
		b.subscribeOK("only-on-b", "", "")
		r := signedRequest(t, m.Addr, appA, http.MethodGet, "/apps/"+appA.ID+"/channels", url.Values{"filter_by_prefix": {"only-"}}, nil)
		if r.Status != 200 || strings.TrimSpace(string(r.Body)) != `{"channels":{}}` {
			t.Fatalf("A's channel list: status %d, body %s, want no channels", r.Status, r.Body)
		}
	})
}

// drainThenSend floods channel from a (of app A) past its client-event rate
// and requires a 4301, then requires that b (of app B) still sends its
// full allowance on channel, every event reaching bPeer.
func drainThenSend(t *testing.T, a, b, bPeer *wsConn, channel string) {
	t.Helper()
	for range 15 {
		a.clientEvent(channel, "client-flood", "x")
	}
	if !slices.ContainsFunc(a.ping(), func(f frame) bool {
		return f.Event == "pusher:error" && f.pusherError(t).Code != nil && *f.pusherError(t).Code == 4301
	}) {
		t.Fatal("15 client events in a burst from A got no 4301")
	}
	for range 10 {
		b.clientEvent(channel, "client-ok", "y")
	}
	noneOf(t, b.ping(), "error for B after A was rate limited", isEvent("pusher:error", ""))
	for range 10 {
		bPeer.expectEvent("client-ok", channel)
	}
}
