package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/internal/redistest"
)

// publishN publishes one event to n channels in one request.
func publishN(t *testing.T, addr string, c cred, n int) restResponse {
	t.Helper()
	channels := make([]string, n)
	for i := range channels {
		channels[i] = fmt.Sprintf("ch-%d", i)
	}
	body, _ := json.Marshal(map[string]any{"name": "e", "data": "x", "channels": channels})
	return signedRequest(t, addr, c, http.MethodPost, "/apps/"+c.ID+"/events", nil, body)
}

// A limited request gets 429 with Retry-After, the X-RateLimit-* headers
// and a JSON body naming the limit.
func requireLimited(t *testing.T, r restResponse, limit string) {
	t.Helper()
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("status %d (%s), want 429", r.Status, r.Body)
	}
	var body struct {
		Error string `json:"error"`
		Limit string `json:"limit"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Limit != limit || body.Error == "" {
		t.Errorf("429 body %s, want {error, limit: %q}", r.Body, limit)
	}
	for _, h := range []string{"Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if _, err := strconv.Atoi(r.Header.Get(h)); err != nil {
			t.Errorf("429 header %s = %q, want a number", h, r.Header.Get(h))
		}
	}
	if n, _ := strconv.Atoi(r.Header.Get("Retry-After")); n < 1 {
		t.Errorf("Retry-After %d, want at least 1", n)
	}
}

// Publishes are counted per channel: one event to 6 channels is 6 against
// a rate of 5, and a refused request publishes nothing.
func TestPublishRateCountsChannels(t *testing.T) {
	a := cred{ID: "201", Key: "keyA", Secret: "secretA"}
	b := cred{ID: "202", Key: "keyB", Secret: "secretB"}
	m := startMain(t, testConfig(appsJSON(appJSON(a, "", `"publishes_per_second":5`), appJSON(b, "", `"publishes_per_second":5`))))
	sub := dial(t, m.Addr, a.Key)
	sub.subscribeOK("ch-0", "", "")

	requireLimited(t, publishN(t, m.Addr, a, 6), "publishes_per_second")
	// App B's bucket is its own (ISO-4).
	if r := publishN(t, m.Addr, b, 5); r.Status != http.StatusOK {
		t.Fatalf("app B after A was refused: %d %s", r.Status, r.Body)
	}
	r := publishN(t, m.Addr, b, 1)
	requireLimited(t, r, "publishes_per_second")
	if r.Header.Get("X-RateLimit-Limit") != "5" {
		t.Errorf("X-RateLimit-Limit %q", r.Header.Get("X-RateLimit-Limit"))
	}
	sub.ping()
	if frames := sub.ping(); len(frames) != 0 {
		t.Errorf("a refused publish was delivered: %v", frames)
	}
	metrics := string(rawRequest(t, m.Addr, http.MethodGet, "/metrics", nil).Body)
	if !strings.Contains(metrics, `herald_rejections_total{app="201",reason="publishes_per_second"} 1`) ||
		!strings.Contains(metrics, `herald_rejections_total{app="202",reason="publishes_per_second"} 1`) {
		t.Errorf("rejections not counted per app and reason:\n%s", metrics)
	}
}

// Limits outside their range, or above the plan's ceiling, are refused
// with a 400 naming the limit, and nothing changes.
func TestLimitsValidation(t *testing.T) {
	cfg := testConfig("")
	cfg.AdminToken = opToken
	m := startMain(t, cfg)
	r := operatorRequest(t, m.Addr, opToken, http.MethodPost, "/v1/tenants", map[string]any{"id": "small", "name": "Small", "plan": "free"})
	if r.Status != http.StatusCreated {
		t.Fatalf("create tenant: %d %s", r.Status, r.Body)
	}
	if r := operatorRequest(t, m.Addr, opToken, http.MethodPost, "/v1/tenants", map[string]any{"name": "X", "plan": "platinum"}); r.Status != http.StatusBadRequest || !strings.Contains(r.errorMessage(t), "platinum") {
		t.Errorf("unknown plan: %d %s", r.Status, r.Body)
	}
	create := func(limits map[string]any) restResponse {
		return operatorRequest(t, m.Addr, opToken, http.MethodPost, "/v1/apps", map[string]any{"tenant_id": "small", "name": "app", "settings": map[string]any{"limits": limits}})
	}
	for _, tt := range []struct {
		limits map[string]any
		want   string
	}{
		{map[string]any{"max_connections": 101}, "max_connections 101 is over the free plan's ceiling of 100"},
		{map[string]any{"publishes_per_second": -1}, "publishes_per_second"},
		{map[string]any{"new_connections_per_second": 1e12}, "new_connections_per_second"},
		{map[string]any{"max_conections": 5}, "max_conections"},
		{map[string]any{"subscriptions_per_second": "fast"}, "subscriptions_per_second"},
	} {
		r := create(tt.limits)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.errorMessage(t), tt.want) {
			t.Errorf("limits %v: %d %s, want 400 naming %q", tt.limits, r.Status, r.Body, tt.want)
		}
	}
	r = create(map[string]any{"max_connections": 50})
	var created struct {
		App struct {
			ID string `json:"id"`
		} `json:"app"`
	}
	if r.Status != http.StatusCreated || json.Unmarshal(r.Body, &created) != nil {
		t.Fatalf("create app: %d %s", r.Status, r.Body)
	}
	patch := operatorRequest(t, m.Addr, opToken, http.MethodPatch, "/v1/apps/"+created.App.ID, map[string]any{"settings": map[string]any{"limits": map[string]any{"client_events_per_second": 11}}})
	if patch.Status != http.StatusBadRequest || !strings.Contains(patch.errorMessage(t), "client_events_per_second") {
		t.Errorf("PATCH over the ceiling: %d %s", patch.Status, patch.Body)
	}
	var limits struct {
		Plan      string         `json:"plan"`
		Settings  map[string]int `json:"settings"`
		Effective map[string]int `json:"effective"`
	}
	r = operatorRequest(t, m.Addr, opToken, http.MethodGet, "/v1/apps/"+created.App.ID+"/limits", nil)
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &limits) != nil {
		t.Fatalf("GET limits: %d %s", r.Status, r.Body)
	}
	if limits.Plan != "free" || limits.Settings["max_connections"] != 50 || limits.Effective["max_connections"] != 50 ||
		limits.Settings["publishes_per_second"] != 0 || limits.Effective["publishes_per_second"] != 100 ||
		limits.Effective["client_events_per_second"] != 10 {
		t.Errorf("limits after a refused PATCH: %s", r.Body)
	}
}

// Per-user limits: subscriptions (averaged over 5 s) and connections.
func TestPerUserLimits(t *testing.T) {
	a := cred{ID: "203", Key: "keyA", Secret: "secretA"}
	m := startMain(t, testConfig(appsJSON(appJSON(a, "", `"subscriptions_per_second":2,"max_connections_per_user":2`))))
	w := signedIn(t, m, a, "u1", "")
	for i := range 10 {
		w.subscribeOK(fmt.Sprintf("c%d", i), "", "")
	}
	e := w.subscribeRefused("c10", "", "")
	if e.Status != 429 || !strings.Contains(e.Error, "subscriptions_per_second") {
		t.Errorf("11th subscribe in 5 s: %+v", e)
	}
	// An anonymous connection has a bucket of its own.
	anon := dial(t, m.Addr, a.Key)
	for i := range 10 {
		anon.subscribeOK(fmt.Sprintf("a%d", i), "", "")
	}
	if e := anon.subscribeRefused("a10", "", ""); e.Status != 429 {
		t.Errorf("11th subscribe of an anonymous connection: %+v", e)
	}
	// The same user on another connection shares the bucket.
	w2 := signedIn(t, m, a, "u1", "")
	w2.subscribeRefused("c11", "", "")
	// A third connection for the user is over max_connections_per_user.
	w3 := dial(t, m.Addr, a.Key)
	ud := `{"id":"u1"}`
	w3.send(map[string]any{"event": "pusher:signin", "data": map[string]string{"auth": a.Key + ":" + hmacHex(a.Secret, w3.SocketID+"::user::"+ud), "user_data": ud}})
	if e := w3.expectError(); e.Code == nil || *e.Code != 4100 || !strings.Contains(e.Message, "max_connections_per_user") {
		t.Errorf("third connection of the user: %+v", e)
	}
	w3.expectClosed(4100, waitTimeout)
	// Closing one frees a slot.
	w.close()
	waitFor(t, "the user's slot to be released", func() bool {
		w4 := dial(t, m.Addr, a.Key)
		defer w4.close()
		w4.send(map[string]any{"event": "pusher:signin", "data": map[string]string{"auth": a.Key + ":" + hmacHex(a.Secret, w4.SocketID+"::user::"+ud), "user_data": ud}})
		return w4.next().Event == "pusher:signin_success"
	})
}

// twoRedisNodes starts two nodes sharing a fresh Redis prefix.
func twoRedisNodes(t *testing.T, apps string, tune func(*Config)) (*Main, *Main) {
	t.Helper()
	url := redistest.URL(t)
	prefix := redistest.Prefix(t, redistest.Client(t, url))
	var nodes []*Main
	for i := range 2 {
		cfg := testConfig(apps)
		cfg.RedisURL, cfg.RedisPrefix, cfg.NodeID = url, prefix, fmt.Sprintf("node%d", i)
		cfg.PresenceTTL = 3 * time.Second
		if tune != nil {
			tune(&cfg)
		}
		nodes = append(nodes, startMain(t, cfg))
	}
	return nodes[0], nodes[1]
}

// A quota of 5 connections per app is exact when clients spread over two
// nodes, and a publish rate is shared by both.
func TestQuotasAcrossNodes(t *testing.T) {
	a := cred{ID: "204", Key: "keyA", Secret: "secretA"}
	n1, n2 := twoRedisNodes(t, appsJSON(appJSON(a, "", `"max_connections":5,"publishes_per_second":5`)), nil)

	var (
		mu       sync.Mutex
		accepted []*websocket.Conn
		refused  int
		wg       sync.WaitGroup
	)
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := []string{n1.Addr, n2.Addr}[i%2]
			conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/"+a.Key+"?protocol=7", nil)
			if err != nil {
				t.Error(err)
				return
			}
			_, msg, _ := conn.ReadMessage()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case strings.Contains(string(msg), "pusher:connection_established"):
				accepted = append(accepted, conn)
			case strings.Contains(string(msg), `"code":4004`):
				refused++
				conn.Close()
			default:
				t.Errorf("unexpected first frame %s", msg)
				conn.Close()
			}
		}()
	}
	wg.Wait()
	if len(accepted) != 5 || refused != 7 {
		t.Fatalf("12 connections over two nodes with max_connections 5: %d accepted, %d refused with 4004", len(accepted), refused)
	}
	accepted[0].Close()
	waitFor(t, "a freed slot on the other node", func() bool {
		conn, _, err := websocket.DefaultDialer.Dial("ws://"+n2.Addr+"/app/"+a.Key+"?protocol=7", nil)
		if err != nil {
			return false
		}
		_, msg, _ := conn.ReadMessage()
		if strings.Contains(string(msg), "connection_established") {
			accepted = append(accepted, conn)
			return true
		}
		conn.Close()
		return false
	})
	for _, c := range accepted {
		c.Close()
	}

	// 5 publishes on node 1 use the shared second's allowance.
	if r := publishN(t, n1.Addr, a, 5); r.Status != http.StatusOK {
		t.Fatalf("5 publishes on node 1: %d %s", r.Status, r.Body)
	}
	requireLimited(t, publishN(t, n2.Addr, a, 1), "publishes_per_second")
}

// dialFrom opens a WebSocket from a given loopback source address and
// returns the handshake status (101 on success).
func dialFrom(t *testing.T, src, addr, key string) (int, *websocket.Conn) {
	t.Helper()
	d := *websocket.DefaultDialer
	d.NetDial = func(network, address string) (net.Conn, error) {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: waitTimeout}
		return nd.Dial(network, address)
	}
	conn, resp, err := d.Dial("ws://"+addr+"/app/"+key+"?protocol=7", nil)
	if resp == nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	resp.Body.Close()
	return resp.StatusCode, conn
}

// A connection storm from one IP is cut to the per-IP rate while clients
// from other addresses keep connecting and receiving.
func TestConnectionStormFromOneIP(t *testing.T) {
	a := cred{ID: "205", Key: "keyA", Secret: "secretA"}
	cfg := testConfig(appsJSON(appJSON(a, "", "")))
	cfg.IPConnectionsPerMinute = 10
	m := startMain(t, cfg)

	bystander := dial(t, m.Addr, a.Key) // from 127.0.0.1
	bystander.subscribeOK("news", "", "")
	var conns []*websocket.Conn
	limited := 0
	for range 30 {
		status, conn := dialFrom(t, "127.0.0.2", m.Addr, a.Key)
		switch status {
		case http.StatusSwitchingProtocols:
			conns = append(conns, conn)
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("storm: status %d", status)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	if len(conns) != 10 || limited != 20 {
		t.Errorf("30 connections from 127.0.0.2 at 10 per minute: %d accepted, %d refused with 429", len(conns), limited)
	}
	if status, conn := dialFrom(t, "127.0.0.3", m.Addr, a.Key); status != http.StatusSwitchingProtocols {
		t.Errorf("a client from another IP during the storm: %d", status)
	} else {
		conn.Close()
	}
	publish(t, m.Addr, a, "news", "still-here", `"x"`, "")
	bystander.expectEvent("still-here", "news")
}

// Over the app's rate of new connections, a connection is refused with
// 4100 (pusher-js reconnects after a back-off), and counted.
func TestNewConnectionRate(t *testing.T) {
	a := cred{ID: "206", Key: "keyA", Secret: "secretA"}
	m := startMain(t, testConfig(appsJSON(appJSON(a, "", `"new_connections_per_second":3`))))
	established, refused := 0, 0
	for range 6 {
		w := dialRaw(t, m.Addr, "/app/"+a.Key+"?protocol=7")
		f := w.next()
		switch f.Event {
		case "pusher:connection_established":
			established++
		case "pusher:error":
			if e := f.pusherError(t); e.Code == nil || *e.Code != 4100 || !strings.Contains(e.Message, "new_connections_per_second") {
				t.Errorf("refusal: %s", f.raw)
			}
			w.expectClosed(4100, waitTimeout)
			refused++
		}
	}
	// Six dials take milliseconds: all in one window, unless a window
	// ended between them, which can only admit more.
	if established < 3 || refused == 0 || established+refused != 6 {
		t.Errorf("6 quick connections at 3 per second: %d established, %d refused", established, refused)
	}
	if !strings.Contains(string(rawRequest(t, m.Addr, http.MethodGet, "/metrics", nil).Body), `reason="new_connections_per_second"`) {
		t.Error("refusals not counted")
	}
}

// The per-IP request rate applies before the signature check, so unsigned
// floods are cut too; another address is unaffected.
func TestRESTRatePerIP(t *testing.T) {
	a := cred{ID: "207", Key: "keyA", Secret: "secretA"}
	cfg := testConfig(appsJSON(appJSON(a, "", "")))
	cfg.IPRequestsPerSecond = 5
	m := startMain(t, cfg)
	limited := 0
	for range 8 {
		r := rawRequest(t, m.Addr, http.MethodGet, "/apps/207/channels", nil)
		switch r.Status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited++
			requireLimited(t, r, "ip_requests_per_second")
		default:
			t.Fatalf("status %d %s", r.Status, r.Body)
		}
	}
	if limited == 0 {
		t.Error("8 requests at 5 per second: none limited")
	}
	client := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}).DialContext}}
	resp, err := client.Get("http://" + m.Addr + "/apps/207/channels")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("another IP: %d, want the signature's 401", resp.StatusCode)
	}
}
