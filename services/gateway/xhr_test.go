package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/services/broker"
)

// xhrServer is a node serving the HTTP fallback on a real listener.
type xhrServer struct {
	t    *testing.T
	n    *Node
	base string
	hc   *http.Client
}

func newXHRServer(t *testing.T, cfg Config, timings fallbackTimings) *xhrServer {
	t.Helper()
	n := testNode(t, cfg, testApp(t, "1", "key"), testApp(t, "2", "other"))
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	newFallback(n, timings).routes(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() {
		// Closing the node ends every session, and so every response.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx)
		_ = app.ShutdownWithTimeout(2 * time.Second)
	})
	return &xhrServer{t: t, n: n, base: "http://" + ln.Addr().String(),
		hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
}

// newSession returns a fresh session path like pusher-js's:
// /pusher/app/{key}/{server}/{session}.
func newSession(key string) string {
	const digits = "0123456789abcdefghijklmnopqrstuv"
	b := make([]byte, 8)
	for i := range b {
		b[i] = digits[rand.IntN(32)]
	}
	return fmt.Sprintf("/pusher/app/%s/%d/%s", key, rand.IntN(1000), b)
}

// publish publishes one event of app 1 as its backend would.
func (x *xhrServer) publish(channel string, pub *broker.Publication) error {
	app, err := x.n.apps.AppByID(context.Background(), "1")
	if err != nil {
		return err
	}
	return x.n.Publish(context.Background(), app, []Outgoing{{Channel: channel, Pub: *pub}})
}

func (x *xhrServer) request(method, path, body string, header ...string) *http.Response {
	x.t.Helper()
	req, err := http.NewRequest(method, x.base+path, strings.NewReader(body))
	if err != nil {
		x.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := x.hc.Do(req)
	if err != nil {
		x.t.Fatal(err)
	}
	return resp
}

// call makes a request and returns its status and body.
func (x *xhrServer) call(path, body string, header ...string) (int, string) {
	x.t.Helper()
	resp := x.request(http.MethodPost, path, body, header...)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		x.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (x *xhrServer) poll(session string, header ...string) (int, string) {
	x.t.Helper()
	return x.call(session+"/xhr?protocol=7&client=js&version=8.6.0&t=1&n=1", "", header...)
}

func (x *xhrServer) send(session string, frames ...string) {
	x.t.Helper()
	body, _ := json.Marshal(append([]string{}, frames...))
	if status, resp := x.call(session+"/xhr_send?t=1&n=2", string(body)); status != http.StatusNoContent {
		x.t.Fatalf("xhr_send %s: %d %s", body, status, resp)
	}
}

// xhrStream reads an xhr_streaming response line by line.
type xhrStream struct {
	t     *testing.T
	resp  *http.Response
	lines chan string // each line without its \n; closed at the end
}

func (x *xhrServer) stream(session string, header ...string) *xhrStream {
	x.t.Helper()
	resp := x.request(http.MethodPost, session+"/xhr_streaming?protocol=7&client=js&version=8.6.0&t=1&n=1", "", header...)
	s := &xhrStream{t: x.t, resp: resp, lines: make(chan string, 1024)}
	x.t.Cleanup(s.close)
	go func() {
		defer close(s.lines)
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			s.lines <- strings.TrimSuffix(line, "\n")
		}
	}()
	return s
}

func (s *xhrStream) close() { _ = s.resp.Body.Close() }

// jsLen is what pusher-js counts of a line and its \n: characters of a
// JavaScript string, UTF-16 code units.
func jsLen(line string) int {
	n := 1
	for _, c := range line {
		n += utf16.RuneLen(c)
	}
	return n
}

// short abbreviates a line for a failure message.
func short(line string) string {
	if len(line) > 120 {
		return line[:120] + fmt.Sprintf("…(%d bytes)", len(line))
	}
	return line
}

// next returns the next line; ok is false if the response ended.
func (s *xhrStream) next(timeout time.Duration) (line string, ok bool) {
	s.t.Helper()
	select {
	case line, ok = <-s.lines:
		return line, ok
	case <-time.After(timeout):
		s.t.Fatalf("no line within %v", timeout)
		return "", false
	}
}

// waitEvent reads lines, skipping heartbeats, until a frame with event
// arrives.
func (s *xhrStream) waitEvent(event string) map[string]any {
	s.t.Helper()
	for {
		line, ok := s.next(3 * time.Second)
		if !ok {
			s.t.Fatalf("stream ended waiting for %s", event)
		}
		if line == "h" || line == "o" {
			continue
		}
		for _, f := range parseALine(s.t, line) {
			if f["event"] == event {
				return f
			}
		}
	}
}

// parseALine decodes an a[...] line into its frames.
func parseALine(t *testing.T, line string) []map[string]any {
	t.Helper()
	if !strings.HasPrefix(line, "a[") {
		t.Fatalf("want an a line, got %q", short(line))
	}
	var frames []string
	if err := json.Unmarshal([]byte(line[1:]), &frames); err != nil {
		t.Fatalf("a line is not a JSON array of strings: %v: %q", err, short(line))
	}
	out := make([]map[string]any, len(frames))
	for i, f := range frames {
		if err := json.Unmarshal([]byte(f), &out[i]); err != nil {
			t.Fatalf("frame is not JSON: %q", short(f))
		}
	}
	return out
}

// openPolling opens a polling session and returns its socket id.
func (x *xhrServer) openPolling(session string, header ...string) string {
	x.t.Helper()
	if status, body := x.poll(session, header...); status != 200 || body != "o\n" {
		x.t.Fatalf("first poll: %d %q, want 200 \"o\\n\"", status, body)
	}
	status, body := x.poll(session, header...)
	if status != 200 || !strings.HasSuffix(body, "\n") || strings.Count(body, "\n") != 1 {
		x.t.Fatalf("second poll: %d %q", status, body)
	}
	frames := parseALine(x.t, strings.TrimSuffix(body, "\n"))
	if len(frames) != 1 || frames[0]["event"] != "pusher:connection_established" {
		x.t.Fatalf("second poll: %q", body)
	}
	var est struct {
		SocketID string `json:"socket_id"`
	}
	if err := json.Unmarshal([]byte(frames[0]["data"].(string)), &est); err != nil || est.SocketID == "" {
		x.t.Fatalf("connection_established data: %v", frames[0]["data"])
	}
	return est.SocketID
}

func subscribeFrame(channel string) string {
	return fmt.Sprintf(`{"event":"pusher:subscribe","data":{"auth":"","channel":%q}}`, channel)
}

func waitConnections(t *testing.T, n *Node, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for n.Stats().Connections != want {
		if time.Now().After(deadline) {
			t.Fatalf("connections = %d, want %d", n.Stats().Connections, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestXHRStreamingSession(t *testing.T) {
	x := newXHRServer(t, Config{}, fallbackTimings{Heartbeat: time.Hour})
	session := newSession("key")
	s := x.stream(session)
	if ct := s.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q", ct)
	}
	if s.resp.Header.Get("X-Accel-Buffering") != "no" || !strings.Contains(s.resp.Header.Get("Cache-Control"), "no-store") {
		t.Errorf("headers = %v", s.resp.Header)
	}
	if line, _ := s.next(2 * time.Second); line != "o" {
		t.Fatalf("first line %q, want o", line)
	}
	est := s.waitEvent("pusher:connection_established")
	if !strings.Contains(est["data"].(string), `"activity_timeout":`) {
		t.Errorf("connection_established = %v", est)
	}

	x.send(session, subscribeFrame("news"))
	if got := s.waitEvent("pusher_internal:subscription_succeeded"); got["channel"] != "news" {
		t.Errorf("subscription_succeeded = %v", got)
	}
	pub := &broker.Publication{Event: "flash", Data: []byte("line\nbreak \"quoted\" \u2028 é 😀")}
	if err := x.publish("news", pub); err != nil {
		t.Fatal(err)
	}
	if got := s.waitEvent("flash"); got["data"] != string(pub.Data) {
		t.Errorf("flash data = %q, want %q", got["data"], pub.Data)
	}

	// A second stream of the session replaces the first, and does not
	// start with o: that would make pusher-js drop the session.
	s2 := x.stream(session)
	if _, ok := s.next(2 * time.Second); ok {
		t.Error("the replaced stream got another line")
	}
	if err := publishTo(x.n, "1", "news", broker.Publication{Event: "after", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if line, _ := s2.next(2 * time.Second); !strings.HasPrefix(line, "a[") || !strings.Contains(line, "after") {
		t.Errorf("the new stream's first line is %q, want the event", line)
	}
	if x.n.Stats().Connections != 1 {
		t.Errorf("connections = %d, want 1", x.n.Stats().Connections)
	}
}

func TestXHRStreamingHeartbeat(t *testing.T) {
	const beat = 100 * time.Millisecond
	x := newXHRServer(t, Config{}, fallbackTimings{Heartbeat: beat})
	session := newSession("key")
	s := x.stream(session)
	s.waitEvent("pusher:connection_established")

	countH := func(d time.Duration) int {
		n := 0
		for end := time.After(d); ; {
			select {
			case line, ok := <-s.lines:
				if !ok {
					t.Fatal("stream ended")
				}
				if line != "h" {
					t.Fatalf("unexpected line %q", line)
				}
				n++
			case <-end:
				return n
			}
		}
	}
	if n := countH(5*beat + beat/2); n < 2 || n > 7 {
		t.Errorf("%d heartbeats in 5.5 intervals", n)
	}
	// pusher-js answers every h with []; answering [] with h would loop.
	for range 20 {
		x.send(session)
	}
	if n := countH(3*beat + beat/2); n > 5 {
		t.Errorf("%d heartbeats in 3.5 intervals after 20 pings: [] must not be answered with h", n)
	}
}

func TestXHRPolling(t *testing.T) {
	x := newXHRServer(t, Config{}, fallbackTimings{Heartbeat: 5 * time.Second})
	session := newSession("key")
	x.openPolling(session)

	// A held poll is answered when the subscription succeeds.
	type answer struct {
		status int
		body   string
		took   time.Duration
	}
	pollAsync := func() chan answer {
		ch := make(chan answer, 1)
		start := time.Now()
		go func() {
			status, body := x.poll(session)
			ch <- answer{status, body, time.Since(start)}
		}()
		time.Sleep(50 * time.Millisecond) // let it be held
		return ch
	}
	wait := func(ch chan answer) answer {
		t.Helper()
		select {
		case a := <-ch:
			if a.status != 200 {
				t.Fatalf("poll answered %d %q", a.status, a.body)
			}
			return a
		case <-time.After(3 * time.Second):
			t.Fatal("poll not answered")
			return answer{}
		}
	}
	held := pollAsync()
	x.send(session, subscribeFrame("news"))
	a := wait(held)
	if f := parseALine(t, strings.TrimSuffix(a.body, "\n")); f[0]["event"] != "pusher_internal:subscription_succeeded" {
		t.Fatalf("poll got %q", a.body)
	}

	held = pollAsync()
	if err := publishTo(x.n, "1", "news", broker.Publication{Event: "flash", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if a := wait(held); !strings.Contains(a.body, "flash") || strings.HasPrefix(a.body, "o") {
		t.Fatalf("poll got %q", a.body)
	}

	// Frames queued between polls come out together, in one a line.
	for i := range 3 {
		if err := publishTo(x.n, "1", "news", broker.Publication{Event: fmt.Sprint("e", i), Data: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if _, body := x.poll(session); strings.Count(body, "\n") != 1 || len(parseALine(t, strings.TrimSuffix(body, "\n"))) != 3 {
		t.Fatalf("poll got %q, want the three events in one line", body)
	}

	// The client's ping, [], completes a held poll with h.
	held = pollAsync()
	x.send(session)
	if a := wait(held); a.body != "h\n" || a.took > 2*time.Second {
		t.Fatalf("poll after [] got %q after %v, want h at once", a.body, a.took)
	}

	// A newer poll replaces the held one, which answers h.
	first := pollAsync()
	second := pollAsync()
	if a := wait(first); a.body != "h\n" {
		t.Fatalf("replaced poll got %q", a.body)
	}
	if err := publishTo(x.n, "1", "news", broker.Publication{Event: "late", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if a := wait(second); !strings.Contains(a.body, "late") {
		t.Fatalf("poll got %q", a.body)
	}
}

func TestXHRPollHeldUntilHeartbeat(t *testing.T) {
	const beat = 150 * time.Millisecond
	x := newXHRServer(t, Config{}, fallbackTimings{Heartbeat: beat})
	session := newSession("key")
	x.openPolling(session)
	start := time.Now()
	status, body := x.poll(session)
	if took := time.Since(start); status != 200 || body != "h\n" || took < beat-10*time.Millisecond || took > 2*time.Second {
		t.Fatalf("idle poll: %d %q after %v, want h after about %v", status, body, took, beat)
	}
}

// pusher-js reopens a stream once it has carried more than 256 Ki
// characters; the server stops writing to it at that point, and the next
// stream carries on from there without losing or repeating a frame.
func TestXHRStreamRestartAfterCharLimit(t *testing.T) {
	x := newXHRServer(t, Config{}, fallbackTimings{Heartbeat: 50 * time.Millisecond})
	session := newSession("key")
	s := x.stream(session)
	s.waitEvent("pusher:connection_established")
	x.send(session, subscribeFrame("big"))
	s.waitEvent("pusher_internal:subscription_succeeded")

	// Characters of one, two and four bytes, the last two UTF-16 units.
	filler := strings.Repeat("aé😀", 2000)
	const events = 50
	for i := range events {
		data := fmt.Sprintf(`{"i":%d,"s":%q}`, i, filler)
		if err := publishTo(x.n, "1", "big", broker.Publication{Event: "chunk", Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
	}
	next, streams, chars := 0, 1, 0
	for next < events {
		line, ok := s.next(3 * time.Second)
		if !ok {
			t.Fatalf("stream %d ended after event %d", streams, next)
		}
		chars += jsLen(line)
		switch {
		case line == "h":
		case line == "o":
			t.Fatal("o on a restarted stream")
		default:
			for _, f := range parseALine(t, line) {
				var d struct{ I int }
				if err := json.Unmarshal([]byte(f["data"].(string)), &d); err != nil || d.I != next {
					t.Fatalf("got event %q, want %d", short(f["data"].(string)), next)
				}
				next++
			}
		}
		if chars > streamCharLimit {
			// Nothing more may come down this stream, not even h.
			select {
			case line, ok := <-s.lines:
				if ok {
					t.Fatalf("stream %d carried %q after %d characters", streams, short(line), chars)
				}
			case <-time.After(300 * time.Millisecond):
			}
			s.close()
			s = x.stream(session)
			streams, chars = streams+1, 0
		}
	}
	if streams < 2 {
		t.Fatalf("all events came down one stream")
	}
	// The session is the same connection throughout.
	if x.n.Stats().Connections != 1 {
		t.Errorf("connections = %d", x.n.Stats().Connections)
	}
}

func TestXHRSessionExpiry(t *testing.T) {
	x := newXHRServer(t, Config{}, fallbackTimings{Heartbeat: 50 * time.Millisecond, Expiry: 300 * time.Millisecond})
	ctx := context.Background()

	// A polling session whose client stops polling is ended, and with it
	// its subscriptions.
	session := newSession("key")
	x.openPolling(session)
	x.send(session, subscribeFrame("news"))
	if _, body := x.poll(session); !strings.Contains(body, "subscription_succeeded") {
		t.Fatalf("poll got %q", body)
	}
	if info, _ := x.n.Channel(ctx, "1", "news"); info.Subscriptions != 1 {
		t.Fatalf("subscriptions = %d", info.Subscriptions)
	}
	waitConnections(t, x.n, 0)
	if info, _ := x.n.Channel(ctx, "1", "news"); info.Subscriptions != 0 {
		t.Errorf("subscriptions after expiry = %d", info.Subscriptions)
	}
	// A late poll learns that the session is over.
	if status, body := x.poll(session); status != 200 || !strings.HasPrefix(body, "c[1006,") {
		t.Errorf("poll of an expired session: %d %q", status, body)
	}

	// A stream in flight keeps its session; once it is gone, the session
	// expires.
	s := x.stream(newSession("key"))
	s.waitEvent("pusher:connection_established")
	time.Sleep(1 * time.Second)
	if x.n.Stats().Connections != 1 {
		t.Fatal("a session with a stream in flight expired")
	}
	s.close()
	waitConnections(t, x.n, 0)
}

func TestXHRSessionBoundToKeyAndIP(t *testing.T) {
	cfg := Config{TrustedProxies: Proxies{netip.MustParsePrefix("127.0.0.1/32")}}
	x := newXHRServer(t, cfg, fallbackTimings{Heartbeat: 200 * time.Millisecond})
	session := newSession("key")
	here := []string{"X-Forwarded-For", "203.0.113.1"}
	elsewhere := []string{"X-Forwarded-For", "203.0.113.2"}
	x.openPolling(session, here...)

	other := strings.Replace(session, "/app/key/", "/app/other/", 1)
	for _, tc := range []struct {
		name, path string
		header     []string
	}{
		{"another IP", session, elsewhere},
		{"another key", other, here},
	} {
		status, body := x.poll(tc.path, tc.header...)
		if status != http.StatusNotFound || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: poll answered %d %q, want 404 JSON", tc.name, status, body)
		}
		status, body = x.call(tc.path+"/xhr_send?t=1&n=1", `["{\"event\":\"pusher:ping\",\"data\":{}}"]`, tc.header...)
		if status != http.StatusNotFound || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: xhr_send answered %d %q, want 404 JSON", tc.name, status, body)
		}
	}
	if status, _ := x.call(session+"/xhr_streaming?protocol=7", "", here...); status != http.StatusNotFound {
		t.Errorf("a polling session took a stream: %d", status)
	}
	// The session itself is untouched and still a single connection.
	x.call(session+"/xhr_send?t=1&n=1", `["{\"event\":\"pusher:ping\",\"data\":{}}"]`, here...)
	if status, body := x.poll(session, here...); status != 200 || !strings.Contains(body, "pusher:pong") {
		t.Errorf("own poll: %d %q", status, body)
	}
	if x.n.Stats().Connections != 1 {
		t.Errorf("connections = %d, want 1", x.n.Stats().Connections)
	}
}

func TestXHRSendRejectsBadBodies(t *testing.T) {
	x := newXHRServer(t, Config{}, fallbackTimings{})
	session := newSession("key")
	x.openPolling(session)
	send := session + "/xhr_send?t=1&n=1"
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"not JSON", `{"event":`, 400},
		{"not an array", `{"event":"pusher:ping"}`, 400},
		{"null", `null`, 400},
		{"not strings", `[{"event":"pusher:ping"}]`, 400},
		{"numbers", `[1,2]`, 400},
		{"too big", `["` + strings.Repeat("x", maxSendBody) + `"]`, 413},
	} {
		resp := x.request(http.MethodPost, send, tc.body)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Error string }
		if resp.StatusCode != tc.status || json.Unmarshal(b, &e) != nil || e.Error == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: %d %s %q, want %d with a JSON error", tc.name, resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.status)
		}
	}
	if status, _ := x.call(newSession("key")+"/xhr_send", `[]`); status != http.StatusNotFound {
		t.Errorf("xhr_send to an unknown session: %d", status)
	}
	if x.n.Stats().Connections != 1 {
		t.Error("a bad body ended the session")
	}
}

// A refused connection is a whole session in one answer: o, the
// pusher:error frame, and the close with the same code.
func TestXHRRefusal(t *testing.T) {
	x := newXHRServer(t, Config{}, fallbackTimings{})
	for _, transport := range []string{"xhr", "xhr_streaming"} {
		status, body := x.call(newSession("nope")+"/"+transport+"?protocol=7", "")
		lines := strings.SplitAfter(body, "\n")
		if status != 200 || len(lines) != 4 || lines[0] != "o\n" || !strings.HasPrefix(lines[2], `c[4001,"`) {
			t.Fatalf("%s: %d %q", transport, status, body)
		}
		f := parseALine(t, strings.TrimSuffix(lines[1], "\n"))
		if f[0]["event"] != "pusher:error" || f[0]["data"].(map[string]any)["code"] != float64(4001) {
			t.Errorf("%s: error frame %v", transport, f)
		}
	}
	if x.n.Stats().Connections != 0 {
		t.Error("a refused session holds a connection")
	}
}

func TestXHRIPConnectionRate(t *testing.T) {
	x := newXHRServer(t, Config{IPConnectionsPerMinute: 1}, fallbackTimings{Heartbeat: 100 * time.Millisecond})
	session := newSession("key")
	x.openPolling(session)
	resp := x.request(http.MethodPost, newSession("key")+"/xhr?protocol=7", "")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), `"limit":"ip_connections_per_minute"`) || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second new session: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	// Requests of an open session are not new connections.
	if status, _ := x.poll(session); status != 200 {
		t.Errorf("poll of the open session: %d", status)
	}
}

func TestXHRCORS(t *testing.T) {
	x := newXHRServer(t, Config{}, fallbackTimings{})
	session := newSession("key")
	for _, p := range []string{"/xhr_streaming", "/xhr", "/xhr_send"} {
		resp := x.request(http.MethodOptions, session+p, "", "Origin", "https://example.com",
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "content-type") ||
			h.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight %s: %d %v", p, resp.StatusCode, h)
		}
	}
	resp := x.request(http.MethodPost, session+"/xhr?protocol=7", "", "Origin", "https://example.com")
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("poll headers %v", resp.Header)
	}
}

// Closing the node closes a streaming session with 4200 and ends the
// response right after the close line.
func TestXHRNodeCloseEndsStream(t *testing.T) {
	x := newXHRServer(t, Config{}, fallbackTimings{Heartbeat: time.Hour})
	s := x.stream(newSession("key"))
	s.waitEvent("pusher:connection_established")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := x.n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if line, _ := s.next(2 * time.Second); !strings.HasPrefix(line, "c[4200,") {
		t.Fatalf("got %q, want c[4200,...]", line)
	}
	if _, ok := s.next(2 * time.Second); ok {
		t.Error("the stream went on after its close line")
	}
}

func TestXHRSessionBounds(t *testing.T) {
	n := testNode(t, Config{}, testApp(t, "1", "key"))
	f := newFallback(n, fallbackTimings{})
	s := &xhrSession{f: f, inReady: make(chan struct{}, 1), done: make(chan struct{})}

	frames := make([]string, maxInboxFrames)
	if err := s.push(frames); err != nil {
		t.Fatal(err)
	}
	if err := s.push([]string{"one more"}); err != errInboxFull {
		t.Errorf("push over the bound = %v", err)
	}

	big := make([]byte, maxOutboxBytes/2+1)
	if err := s.WriteMany([][]byte{big}); err != nil {
		t.Fatal(err)
	}
	before := n.Stats().SlowConsumers
	if err := s.WriteMany([][]byte{big}); err == nil {
		t.Error("WriteMany over the outbox bound succeeded")
	}
	if n.Stats().SlowConsumers != before+1 {
		t.Error("slow consumer not counted")
	}
	r := s.attach(true)
	s.opened = true
	if out, st := s.take(r, nil); st != xhrLast || !strings.HasPrefix(string(out), `c[4100,`) {
		t.Errorf("take after overflow = %q, %v", out, st)
	}
	if _, err := s.next(); err == nil {
		t.Error("next after the session ended returned a frame")
	}
}

func TestUTF16Len(t *testing.T) {
	for _, s := range []string{"", "abc", "é", "€uro", "😀", "aé😀\u2028", strings.Repeat("aé😀", 100)} {
		if got, want := utf16Len([]byte(s)), len(utf16.Encode([]rune(s))); got != want {
			t.Errorf("utf16Len(%q) = %d, want %d", s, got, want)
		}
	}
}

// fallbackGoroutines counts the goroutines running fallback code.
func fallbackGoroutines(names ...string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, name := range names {
			if strings.Contains(g, name) {
				count++
				break
			}
		}
	}
	return count
}

// Once a session has ended, its Serve goroutine and its receive loops are
// gone; the janitor goes with the node.
func TestXHRGoroutinesExit(t *testing.T) {
	x := newXHRServer(t, Config{}, fallbackTimings{Heartbeat: 50 * time.Millisecond, Expiry: 200 * time.Millisecond})
	session := x.stream(newSession("key"))
	session.waitEvent("pusher:connection_established")
	polling := newSession("key")
	x.openPolling(polling)
	held := make(chan struct{})
	go func() {
		defer close(held)
		x.poll(polling)
	}()
	perSession := []string{"(*xhrSession).next", "(*fallback).stream", "(*fallback).poll"}
	if n := fallbackGoroutines(perSession...); n < 3 {
		t.Fatalf("%d session goroutines running, want at least Serve twice and a stream", n)
	}
	session.close()
	<-held
	waitConnections(t, x.n, 0)
	deadline := time.Now().Add(2 * time.Second)
	for fallbackGoroutines(perSession...) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d session goroutines left after the sessions ended", fallbackGoroutines(perSession...))
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := x.n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline = time.Now().Add(2 * time.Second); fallbackGoroutines("(*fallback).janitor") > 0; {
		if time.Now().After(deadline) {
			t.Fatal("the janitor outlived the node")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
