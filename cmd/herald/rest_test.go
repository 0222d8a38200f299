package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pusher "github.com/pusher/pusher-http-go/v5"

	"github.com/heraldrt/herald/authz"
)

// TestREST_PusherHTTPGo drives the REST API with the official Go server SDK.
func TestREST_PusherHTTPGo(t *testing.T) {
	t.Parallel()
	app := cred{"1", "key1", "secret1"}
	m := startMain(t, testConfig(appsJSON(appJSON(app, "", ""))))
	client := &pusher.Client{AppID: app.ID, Key: app.Key, Secret: app.Secret, Host: m.Addr, Secure: false}

	t.Run("Trigger", func(t *testing.T) {
		ws := dial(t, m.Addr, app.Key)
		ws.subscribeOK("sdk-public", "", "")
		data := `{"msg":"héllo \"quoted\" <tag> & \\ slash","n":1}`
		if err := client.Trigger("sdk-public", "greet", data); err != nil {
			t.Fatalf("Trigger: %v", err)
		}
		if f := ws.expectEvent("greet", "sdk-public"); f.data() != data {
			t.Fatalf("data = %q, want exactly %q", f.data(), data)
		}
		// Non-string data is JSON-encoded by the SDK and relayed as that text.
		if err := client.Trigger("sdk-public", "greet", map[string]int{"a": 1}); err != nil {
			t.Fatalf("Trigger: %v", err)
		}
		if f := ws.expectEvent("greet", "sdk-public"); f.data() != `{"a":1}` {
			t.Fatalf("data = %q, want {\"a\":1}", f.data())
		}
	})

	t.Run("TriggerMulti", func(t *testing.T) {
		ws := dial(t, m.Addr, app.Key)
		chans := []string{"multi-a", "multi-b", "multi-c"}
		for _, ch := range chans {
			ws.subscribeOK(ch, "", "")
		}
		if err := client.TriggerMulti(chans, "multi", "payload"); err != nil {
			t.Fatalf("TriggerMulti: %v", err)
		}
		var got []string
		for range chans {
			f := ws.expect("multi event", func(f frame) bool { return f.Event == "multi" })
			if f.data() != "payload" {
				t.Fatalf("data = %q", f.data())
			}
			got = append(got, f.Channel)
		}
		slices.Sort(got)
		if !slices.Equal(got, chans) {
			t.Fatalf("event reached channels %v, want %v", got, chans)
		}
	})

	t.Run("TriggerExclusive", func(t *testing.T) {
		excluded := dial(t, m.Addr, app.Key)
		other := dial(t, m.Addr, app.Key)
		excluded.subscribeOK("sdk-excl", "", "")
		other.subscribeOK("sdk-excl", "", "")
		if err := client.TriggerExclusive("sdk-excl", "secret-event", "x", excluded.SocketID); err != nil {
			t.Fatalf("TriggerExclusive: %v", err)
		}
		other.expectEvent("secret-event", "sdk-excl")
		if err := client.Trigger("sdk-excl", "marker", "m"); err != nil {
			t.Fatal(err)
		}
		noneOf(t, excluded.until("marker", "sdk-excl"), "event for the excluded socket", isEvent("secret-event", "sdk-excl"))
		other.expectEvent("marker", "sdk-excl")
	})

	t.Run("TriggerBatch", func(t *testing.T) {
		ws := dial(t, m.Addr, app.Key)
		ws.subscribeOK("batch-a", "", "")
		ws.subscribeOK("batch-b", "", "")
		info := "subscription_count"
		res, err := client.TriggerBatch([]pusher.Event{
			{Channel: "batch-a", Name: "b1", Data: "one", Info: &info},
			{Channel: "batch-b", Name: "b2", Data: "two"},
			{Channel: "batch-a", Name: "b3", Data: "three"},
		})
		if err != nil {
			t.Fatalf("TriggerBatch: %v", err)
		}
		if len(res.Batch) != 3 || res.Batch[0].SubscriptionCount == nil || *res.Batch[0].SubscriptionCount != 1 ||
			res.Batch[1].SubscriptionCount != nil {
			t.Fatalf("TriggerBatch result %+v: want 3 items, the first with subscription_count 1", res.Batch)
		}
		for _, want := range []struct{ ch, ev, data string }{{"batch-a", "b1", "one"}, {"batch-b", "b2", "two"}, {"batch-a", "b3", "three"}} {
			f := ws.next()
			if f.Channel != want.ch || f.Event != want.ev || f.data() != want.data {
				t.Fatalf("got %s, want %s on %s with data %s, in batch order", f, want.ev, want.ch, want.data)
			}
		}
	})

	t.Run("ChannelsChannelUsers", func(t *testing.T) {
		ws := dial(t, m.Addr, app.Key)
		cd := `{"user_id":"alice","user_info":{"name":"Alice"}}`
		sub := ws.subscribeOK("presence-lobby", authz.ChannelToken(app.tenantsKey(), ws.SocketID, "presence-lobby", cd), cd)
		var pres struct {
			Presence struct {
				IDs   []string                   `json:"ids"`
				Hash  map[string]json.RawMessage `json:"hash"`
				Count int                        `json:"count"`
			} `json:"presence"`
		}
		sub.decodeData(t, &pres)
		if pres.Presence.Count != 1 || !slices.Equal(pres.Presence.IDs, []string{"alice"}) || string(pres.Presence.Hash["alice"]) != `{"name":"Alice"}` {
			t.Fatalf("presence data %s", sub.data())
		}
		ws2 := dial(t, m.Addr, app.Key)
		ws2.subscribeOK("sdk-count", "", "")
		ws.subscribeOK("sdk-count", "", "")

		prefix, userCount := "presence-", "user_count"
		list, err := client.Channels(pusher.ChannelsParams{FilterByPrefix: &prefix, Info: &userCount})
		if err != nil {
			t.Fatalf("Channels: %v", err)
		}
		if len(list.Channels) != 1 || list.Channels["presence-lobby"].UserCount != 1 {
			t.Fatalf("Channels(presence-, user_count) = %+v, want only presence-lobby with user_count 1", list.Channels)
		}
		all, err := client.Channels(pusher.ChannelsParams{})
		if err != nil {
			t.Fatalf("Channels: %v", err)
		}
		if _, ok := all.Channels["sdk-count"]; !ok {
			t.Fatalf("Channels() = %v: sdk-count is missing", all.Channels)
		}

		subs := "subscription_count"
		ch, err := client.Channel("sdk-count", pusher.ChannelParams{Info: &subs})
		if err != nil {
			t.Fatalf("Channel: %v", err)
		}
		if !ch.Occupied || ch.SubscriptionCount != 2 {
			t.Fatalf("Channel(sdk-count) = %+v, want occupied with subscription_count 2", ch)
		}
		uc := "user_count"
		pch, err := client.Channel("presence-lobby", pusher.ChannelParams{Info: &uc})
		if err != nil {
			t.Fatalf("Channel: %v", err)
		}
		if !pch.Occupied || pch.UserCount != 1 {
			t.Fatalf("Channel(presence-lobby) = %+v, want occupied with user_count 1", pch)
		}
		empty, err := client.Channel("nobody-here", pusher.ChannelParams{})
		if err != nil {
			t.Fatalf("Channel: %v", err)
		}
		if empty.Occupied {
			t.Fatalf("Channel(nobody-here) = %+v, want unoccupied", empty)
		}

		users, err := client.GetChannelUsers("presence-lobby")
		if err != nil {
			t.Fatalf("GetChannelUsers: %v", err)
		}
		if len(users.List) != 1 || users.List[0].ID != "alice" {
			t.Fatalf("GetChannelUsers = %+v, want [alice]", users.List)
		}

		// Trigger with info on a presence channel.
		res, err := client.TriggerWithParams("presence-lobby", "hi", "x", pusher.TriggerParams{Info: &uc})
		if err != nil {
			t.Fatalf("TriggerWithParams: %v", err)
		}
		if c := res.Channels["presence-lobby"].UserCount; c == nil || *c != 1 {
			t.Fatalf("TriggerWithParams info = %+v, want user_count 1", res.Channels)
		}
		ws.expectEvent("hi", "presence-lobby")
	})

	t.Run("TerminateUserConnections", func(t *testing.T) {
		// pusher-http-go v5.1.1 has no TerminateUserConnections, so the
		// request is signed by hand, the way the SDKs sign (§8.1).
		bob := dial(t, m.Addr, app.Key)
		bobData := `{"id":"bob"}`
		bob.signin(authz.UserToken(app.tenantsKey(), bob.SocketID, bobData), bobData)
		bob.subscribeOK("term-chan", "", "")
		carol := dial(t, m.Addr, app.Key)
		carolData := `{"id":"carol","user_info":{"n":1}}`
		// Computed independently of authz: HMAC(secret, socket_id::user::user_data).
		carol.signin(app.Key+":"+hmacHex(app.Secret, carol.SocketID+"::user::"+carolData), carolData)
		carol.subscribeOK("term-chan", "", "")

		path := "/apps/" + app.ID + "/users/bob/terminate_connections"
		body := []byte("{}")
		q := handSignParams(app, http.MethodPost, path, nil, body, time.Now().Unix())
		r := rawRequest(t, m.Addr, http.MethodPost, path+"?"+q.Encode(), body)
		if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != "{}" {
			t.Fatalf("terminate: status %d, body %s", r.Status, r.Body)
		}
		e := bob.expectError()
		if e.Code == nil || *e.Code != 4009 {
			t.Fatalf("terminated connection got pusher:error code %v, want 4009", e.Code)
		}
		bob.expectClosed(4009, waitTimeout)

		carol.ping()
		publish(t, m.Addr, app, "term-chan", "still-here", "y", "")
		carol.expectEvent("still-here", "term-chan")
		waitFor(t, "term-chan subscription_count 1", func() bool {
			return channelInfo(t, m.Addr, app, "term-chan", "subscription_count")["subscription_count"] == float64(1)
		})
	})
}

func TestREST_Errors(t *testing.T) {
	t.Parallel()
	app := cred{"1", "key1", "secret1"}
	m := startMain(t, testConfig(appsJSON(appJSON(app, "", ""))))
	events := "/apps/1/events"
	now := time.Now().Unix()

	eventBody := func(name, data string, channels ...string) []byte {
		b, _ := json.Marshal(map[string]any{"name": name, "data": data, "channels": channels})
		return b
	}
	goodBody := eventBody("ev", "d", "c")

	// A hand-signed request the server accepts: every case below differs
	// from it in one respect.
	if r := rawRequest(t, m.Addr, http.MethodPost, events+"?"+handSignParams(app, "POST", events, nil, goodBody, now).Encode(), goodBody); r.Status != http.StatusOK {
		t.Fatalf("control request: status %d, body %s", r.Status, r.Body)
	}

	// The ±600 s window is inclusive of 599 s either way.
	for _, ts := range []int64{now - 599, now + 599} {
		q := handSignParams(app, "POST", events, nil, goodBody, ts)
		if r := rawRequest(t, m.Addr, http.MethodPost, events+"?"+q.Encode(), goodBody); r.Status != http.StatusOK {
			t.Fatalf("timestamp %+d s: status %d, body %s", ts-now, r.Status, r.Body)
		}
	}

	hand := func(c cred, method, path string, params url.Values, body []byte, ts int64, edit func(url.Values)) func() restResponse {
		return func() restResponse {
			q := handSignParams(c, method, path, params, body, ts)
			if edit != nil {
				edit(q)
			}
			return rawRequest(t, m.Addr, method, path+"?"+q.Encode(), body)
		}
	}
	signed := func(method, path string, params url.Values, body []byte) func() restResponse {
		return func() restResponse { return signedRequest(t, m.Addr, app, method, path, params, body) }
	}

	manyChannels := make([]string, 101)
	for i := range manyChannels {
		manyChannels[i] = "ch" + strconv.Itoa(i)
	}
	batch := func(n int, name string) []byte {
		items := make([]map[string]string, n)
		for i := range items {
			items[i] = map[string]string{"channel": "c", "name": name, "data": "d"}
		}
		b, _ := json.Marshal(map[string]any{"batch": items})
		return b
	}
	huge := []byte(`{"name":"ev","channels":["c"],"data":"` + strings.Repeat("x", 300<<10) + `"}`)

	for _, tc := range []struct {
		name    string
		do      func() restResponse
		status  int
		mention string // a word the error message must contain
	}{
		{"UnknownAppID", hand(app, "POST", "/apps/999/events", nil, goodBody, now, nil), 404, "app"},
		{"WrongSecret", hand(cred{"1", "key1", "not-the-secret"}, "POST", events, nil, goodBody, now, nil), 401, "auth_signature"},
		{"UnknownKey", hand(cred{"1", "nokey", "secret1"}, "POST", events, nil, goodBody, now, nil), 401, "auth_key"},
		{"MissingSignature", hand(app, "POST", events, nil, goodBody, now, func(q url.Values) { q.Del("auth_signature") }), 401, "auth_signature"},
		{"MissingKey", hand(app, "POST", events, nil, goodBody, now, func(q url.Values) { q.Del("auth_key") }), 401, "auth_key"},
		{"MissingTimestamp", hand(app, "POST", events, nil, goodBody, now, func(q url.Values) { q.Del("auth_timestamp") }), 401, "auth_timestamp"},
		{"WrongVersion", hand(app, "POST", events, nil, goodBody, now, func(q url.Values) { q.Set("auth_version", "2.0") }), 401, "auth_version"},
		{"RepeatedSignature", hand(app, "POST", events, nil, goodBody, now, func(q url.Values) { q.Add("auth_signature", q.Get("auth_signature")) }), 401, "auth_signature"},
		{"Timestamp601sOld", hand(app, "POST", events, nil, goodBody, now-601, nil), 401, "auth_timestamp"},
		{"Timestamp601sAhead", hand(app, "POST", events, nil, goodBody, now+601, nil), 401, "auth_timestamp"},
		{"TimestampNotANumber", hand(app, "POST", events, nil, goodBody, now, func(q url.Values) { q.Set("auth_timestamp", "soon") }), 401, "auth_timestamp"},
		{"BodyMD5Mismatch", func() restResponse {
			// Signed for goodBody, sent with another body.
			q := handSignParams(app, "POST", events, nil, goodBody, now)
			return rawRequest(t, m.Addr, "POST", events+"?"+q.Encode(), eventBody("ev", "tampered", "c"))
		}, 401, "body_md5"},
		{"BodyMD5Missing", hand(app, "POST", events, nil, goodBody, now, func(q url.Values) { q.Del("body_md5") }), 401, "body_md5"},
		{"SignatureOverOtherPath", func() restResponse {
			q := handSignParams(app, "POST", "/apps/1/batch_events", nil, goodBody, now)
			return rawRequest(t, m.Addr, "POST", events+"?"+q.Encode(), goodBody)
		}, 401, "auth_signature"},
		{"Data10241Bytes", signed("POST", events, nil, eventBody("ev", strings.Repeat("x", 10241), "c")), 413, "data"},
		{"Channels101", signed("POST", events, nil, eventBody("ev", "d", manyChannels...)), 400, "channels"},
		{"NoChannels", signed("POST", events, nil, eventBody("ev", "d")), 400, "channel"},
		{"InvalidChannelName", signed("POST", events, nil, eventBody("ev", "d", "bad channel")), 400, "channel"},
		{"MissingName", signed("POST", events, nil, []byte(`{"data":"d","channels":["c"]}`)), 400, "name"},
		{"DataNotString", signed("POST", events, nil, []byte(`{"name":"ev","data":{"a":1},"channels":["c"]}`)), 400, "data"},
		{"BadSocketID", signed("POST", events, nil, []byte(`{"name":"ev","data":"d","channels":["c"],"socket_id":"abc"}`)), 400, "socket_id"},
		{"Batch11Events", signed("POST", "/apps/1/batch_events", nil, batch(11, "ev")), 400, "batch"},
		{"BatchEmpty", signed("POST", "/apps/1/batch_events", nil, []byte(`{"batch":[]}`)), 400, "batch"},
		{"ReservedPusher", signed("POST", events, nil, eventBody("pusher:x", "d", "c")), 400, "name"},
		{"ReservedPusherInternal", signed("POST", events, nil, eventBody("pusher_internal:x", "d", "c")), 400, "name"},
		{"ReservedHerald", signed("POST", events, nil, eventBody("herald:x", "d", "c")), 400, "name"},
		{"ReservedInBatch", signed("POST", "/apps/1/batch_events", nil, batch(2, "pusher_internal:member_added")), 400, "name"},
		{"InvalidJSON", signed("POST", events, nil, []byte(`{"name":"ev",`)), 400, "JSON"},
		{"BodyOver256KiB", func() restResponse {
			// Over a raw connection: the server answers before reading the
			// body and resets the connection, which makes net/http's client
			// report the reset instead of the answer (see rawTCPRequest).
			q := authz.SignRequest(app.tenantsKey(), "POST", events, nil, huge, time.Now())
			return rawTCPRequest(t, m.Addr, "POST", events+"?"+q, huge)
		}, 413, "large"},
		{"UserCountWithoutPresencePrefix", signed("GET", "/apps/1/channels", url.Values{"info": {"user_count"}}, nil), 400, "user_count"},
		{"UserCountOnPublicChannel", signed("GET", "/apps/1/channels/public-x", url.Values{"info": {"user_count"}}, nil), 400, "user_count"},
		{"UnknownInfo", signed("GET", "/apps/1/channels", url.Values{"info": {"secrets"}}, nil), 400, "info"},
		{"UsersOfPublicChannel", signed("GET", "/apps/1/channels/public-x/users", nil, nil), 400, "presence"},
		{"RepeatedInfo", signed("GET", "/apps/1/channels/presence-x", url.Values{"info": {"user_count", "subscription_count"}}, nil), 400, "info"},
		{"RepeatedFilter", signed("GET", "/apps/1/channels", url.Values{"filter_by_prefix": {"a", "b"}}, nil), 400, "filter_by_prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.do()
			if r.Status != tc.status {
				t.Errorf("status %d, want %d (body %s)", r.Status, tc.status, r.Body)
			}
			if !strings.HasPrefix(r.ContentType, "application/json") {
				t.Errorf("Content-Type %q, want application/json", r.ContentType)
			}
			msg := r.errorMessage(t)
			if msg == "" {
				t.Fatalf("empty error message: %s", r.Body)
			}
			if !strings.Contains(strings.ToLower(msg), strings.ToLower(tc.mention)) {
				t.Errorf("error %q does not mention %q", msg, tc.mention)
			}
		})
	}

	// Nothing published by a refused request reaches a subscriber.
	t.Run("RefusedRequestsPublishNothing", func(t *testing.T) {
		ws := dial(t, m.Addr, app.Key)
		ws.subscribeOK("c", "", "")
		for _, body := range [][]byte{eventBody("pusher:x", "d", "c"), batch(11, "ev")} {
			path := events
			if strings.Contains(string(body), "batch") {
				path = "/apps/1/batch_events"
			}
			if r := signedRequest(t, m.Addr, app, "POST", path, nil, body); r.Status != 400 {
				t.Fatalf("status %d", r.Status)
			}
		}
		// A batch whose last item is bad publishes none of its items.
		mixed := []byte(`{"batch":[{"channel":"c","name":"ok","data":"1"},{"channel":"c","name":"pusher:bad","data":"2"}]}`)
		if r := signedRequest(t, m.Addr, app, "POST", "/apps/1/batch_events", nil, mixed); r.Status != 400 {
			t.Fatalf("mixed batch: status %d, body %s", r.Status, r.Body)
		}
		publish(t, m.Addr, app, "c", "marker", "m", "")
		if before := ws.until("marker", "c"); len(before) != 0 {
			t.Fatalf("refused requests delivered %v", before)
		}
	})

	// An unsigned request is refused with a message naming what is missing.
	t.Run("Unsigned", func(t *testing.T) {
		r := rawRequest(t, m.Addr, http.MethodGet, "/apps/1/channels", nil)
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("unsigned GET /channels: status %d, want 401", r.Status)
		}
		if msg := r.errorMessage(t); !strings.Contains(msg, "auth_") {
			t.Fatalf("error %q does not name the missing parameter", msg)
		}
	})
}
