package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/pgtest"
)

// durableApp is an app whose channels "d-*" are durable, keeping keep
// events.
func durableApp(c cred, keep int) string {
	return appJSON(c, fmt.Sprintf(`"settings":{"limits":{"publishes_per_second":100000},"durable":[{"pattern":"d-*","max_events":%d}]}`, keep), "")
}

// seqOf returns a frame's top-level seq, or 0.
func seqOf(t *testing.T, f frame) uint64 {
	t.Helper()
	var v struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal([]byte(f.raw), &v); err != nil {
		t.Fatalf("frame %s: %v", f.raw, err)
	}
	return v.Seq
}

// collectEvents reads n events named event on channel and returns their seqs and
// data, in arrival order.
func collectEvents(t *testing.T, w *wsConn, channel, event string, n int) (seqs []uint64, data []string) {
	t.Helper()
	for len(seqs) < n {
		f := w.expectEvent(event, channel)
		seqs = append(seqs, seqOf(t, f))
		data = append(data, f.data())
	}
	return seqs, data
}

type historyPage struct {
	Channel      string `json:"channel"`
	Epoch        string `json:"epoch"`
	Head         uint64 `json:"head"`
	OldestSeq    uint64 `json:"oldest_seq"`
	NextAfterSeq uint64 `json:"next_after_seq"`
	HasMore      bool   `json:"has_more"`
	Events       []struct {
		Seq         uint64 `json:"seq"`
		Event       string `json:"event"`
		Data        string `json:"data"`
		PublishedAt string `json:"published_at"`
	} `json:"events"`
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

func readHistory(t *testing.T, addr string, c cred, channel string, params url.Values) (int, historyPage) {
	t.Helper()
	r := signedRequest(t, addr, c, http.MethodGet, "/apps/"+c.ID+"/channels/"+channel+"/events", params, nil)
	var p historyPage
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("history answer %d %s: %v", r.Status, r.Body, err)
	}
	return r.Status, p
}

// TestDurableConcurrentPublishersOnTwoNodes publishes to one durable channel
// through two API nodes at once: subscribers on both nodes see one order,
// the log's order, without gaps or duplicates.
func TestDurableConcurrentPublishersOnTwoNodes(t *testing.T) {
	a := cred{ID: "601", Key: "keyA", Secret: "secretA"}
	db := pgtest.SchemaURL(t)
	n1, n2 := twoRedisNodes(t, appsJSON(durableApp(a, 1000)), func(c *Config) {
		c.DatabaseURL, c.Migrate = db, true
		c.MasterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	})
	s1, s2 := dial(t, n1.Addr, a.Key), dial(t, n2.Addr, a.Key)
	for _, s := range []*wsConn{s1, s2} {
		ok := s.subscribeOK("d-race", "", "")
		if !strings.Contains(ok.raw, `"epoch":`) || seqOf(t, ok) != 0 {
			t.Fatalf("subscription_succeeded of a new durable channel: %s", ok.raw)
		}
	}
	const each = 100
	var wg sync.WaitGroup
	for i, n := range []*Main{n1, n2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				publish(t, n.Addr, a, "d-race", "e", fmt.Sprintf("node%d-%d", i, j), "")
			}
		}()
	}
	wg.Wait()
	seqs1, data1 := collectEvents(t, s1, "d-race", "e", 2*each)
	seqs2, data2 := collectEvents(t, s2, "d-race", "e", 2*each)
	want := make([]uint64, 2*each)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(seqs1, want) || !slices.Equal(seqs2, want) {
		t.Fatalf("seqs are not 1..%d in order:\nnode 1: %v\nnode 2: %v", 2*each, seqs1, seqs2)
	}
	if !slices.Equal(data1, data2) {
		t.Fatalf("the two nodes delivered different orders")
	}
	status, page := readHistory(t, n2.Addr, a, "d-race", url.Values{"limit": {"1000"}})
	if status != 200 || len(page.Events) != 2*each {
		t.Fatalf("history: %d %+v", status, page)
	}
	for i, ev := range page.Events {
		if ev.Seq != uint64(i+1) || ev.Data != data1[i] {
			t.Fatalf("history event %d = %+v; subscribers saw %q", i, ev, data1[i])
		}
	}
}

// TestHistoryAPI pages through a durable channel's log, and refuses what it
// cannot serve with a clear status.
func TestHistoryAPI(t *testing.T) {
	a := cred{ID: "602", Key: "keyA", Secret: "secretA"}
	b := cred{ID: "603", Key: "keyB", Secret: "secretB"}
	m := startMain(t, testConfig(appsJSON(durableApp(a, 5), durableApp(b, 5))))
	for i := range 8 {
		publish(t, m.Addr, a, "d-h", "e", strconv.Itoa(i+1), "")
	}
	// Retention keeps 5; memory enforces it at once.
	status, p := readHistory(t, m.Addr, a, "d-h", url.Values{"after_seq": {"3"}, "limit": {"2"}})
	if status != 200 || p.Head != 8 || p.OldestSeq != 4 || len(p.Events) != 2 || p.Events[0].Seq != 4 || p.NextAfterSeq != 5 || !p.HasMore || p.Epoch == "" {
		t.Fatalf("page 1: %d %+v", status, p)
	}
	if _, err := time.Parse(time.RFC3339Nano, p.Events[0].PublishedAt); err != nil || p.Events[0].Data != "4" || p.Events[0].Event != "e" {
		t.Errorf("event %+v: %v", p.Events[0], err)
	}
	status, p = readHistory(t, m.Addr, a, "d-h", url.Values{"after_seq": {"5"}})
	if status != 200 || len(p.Events) != 3 || p.HasMore || p.NextAfterSeq != 8 {
		t.Fatalf("page 2: %d %+v", status, p)
	}
	epoch := p.Epoch
	for _, tc := range []struct {
		name    string
		channel string
		params  url.Values
		status  int
		reason  string
	}{
		{"older than retention", "d-h", url.Values{"after_seq": {"1"}}, 410, "expired"},
		{"other epoch", "d-h", url.Values{"epoch": {"ffffffffffffffff"}}, 410, "epoch_changed"},
		{"beyond the head", "d-h", url.Values{"after_seq": {"9"}}, 410, "unknown_position"},
		{"not durable", "plain", nil, 404, ""},
		{"limit too big", "d-h", url.Values{"after_seq": {"3"}, "limit": {"1001"}}, 400, ""},
		{"bad after_seq", "d-h", url.Values{"after_seq": {"-1"}}, 400, ""},
	} {
		status, p := readHistory(t, m.Addr, a, tc.channel, tc.params)
		if status != tc.status || p.Reason != tc.reason || p.Error == "" {
			t.Errorf("%s: %d %+v, want %d %q", tc.name, status, p, tc.status, tc.reason)
		}
	}
	if status, p := readHistory(t, m.Addr, a, "d-h", url.Values{"after_seq": {"7"}, "epoch": {epoch}}); status != 200 || len(p.Events) != 1 {
		t.Errorf("with the right epoch: %d %+v", status, p)
	}
	// App b's channel of the same name is its own, and b's key cannot read
	// a's log.
	if status, p := readHistory(t, m.Addr, b, "d-h", nil); status != 200 || p.Head != 0 || len(p.Events) != 0 {
		t.Errorf("app b's d-h: %d %+v", status, p)
	}
	r := signedRequest(t, m.Addr, b, http.MethodGet, "/apps/"+a.ID+"/channels/d-h/events", nil, nil)
	if r.Status != 401 {
		t.Errorf("app b's key on app a's history: %d %s", r.Status, r.Body)
	}
}

// sseStream is an open SSE response.
type sseStream struct {
	resp  *http.Response
	lines *bufio.Scanner
}

func openSSE(t *testing.T, addr, pathAndQuery string, header http.Header) (*sseStream, int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+pathAndQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		defer resp.Body.Close()
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return nil, resp.StatusCode, e.Error
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseStream{resp: resp, lines: bufio.NewScanner(resp.Body)}, 200, ""
}

// next returns the next message's id and data (comments skipped).
func (s *sseStream) next(t *testing.T) (id string, data frame) {
	t.Helper()
	done := make(chan struct{})
	timer := time.AfterFunc(waitTimeout, func() { s.resp.Body.Close() })
	defer func() { timer.Stop(); close(done) }()
	for s.lines.Scan() {
		line := s.lines.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "data: "):
			data.raw = line[6:]
			if err := json.Unmarshal([]byte(data.raw), &data); err != nil {
				t.Fatalf("SSE data is not a frame: %s", line)
			}
		case line == "" && data.raw != "":
			return id, data
		}
	}
	t.Fatalf("SSE stream ended or stalled: %v", s.lines.Err())
	return "", frame{}
}

func (s *sseStream) expect(t *testing.T, event, channel string) (string, frame) {
	t.Helper()
	for {
		id, f := s.next(t)
		if f.Event == event && f.Channel == channel {
			return id, f
		}
	}
}

// TestSSE streams public and durable channels, resumes from Last-Event-ID,
// and holds private channels to stream tokens (TOK-5).
func TestSSE(t *testing.T) {
	a := cred{ID: "604", Key: "keyA", Secret: "secretA"}
	m := startMain(t, testConfig(appsJSON(durableApp(a, 100))))
	s, status, msg := openSSE(t, m.Addr, "/app/"+a.Key+"/sse?channels=news,d-s", nil)
	if s == nil {
		t.Fatalf("SSE refused: %d %s", status, msg)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream; charset=utf-8", "X-Accel-Buffering": "no", "Access-Control-Allow-Origin": "*"} {
		if got := s.resp.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if s.resp.Header.Get("Access-Control-Allow-Credentials") != "" || !strings.Contains(s.resp.Header.Get("Cache-Control"), "no-cache") {
		t.Errorf("headers %v", s.resp.Header)
	}
	s.expect(t, "pusher_internal:subscription_succeeded", "news")
	s.expect(t, "pusher_internal:subscription_succeeded", "d-s")
	// A channel name holding a comma goes in a channel= parameter of its own.
	comma, _, _ := openSSE(t, m.Addr, "/app/"+a.Key+"/sse?channel="+url.QueryEscape("a,b")+"&channels=c", nil)
	comma.expect(t, "pusher_internal:subscription_succeeded", "c")
	comma.expect(t, "pusher_internal:subscription_succeeded", "a,b")
	comma.resp.Body.Close()
	publish(t, m.Addr, a, "news", "flash", "hi", "")
	if _, f := s.expect(t, "flash", "news"); f.data() != "hi" {
		t.Errorf("news event %s", f.raw)
	}
	publish(t, m.Addr, a, "d-s", "e", "1", "")
	publish(t, m.Addr, a, "d-s", "e", "2", "")
	s.expect(t, "e", "d-s")
	id, _ := s.expect(t, "e", "d-s")
	if !regexp.MustCompile(`^d-s:2:[0-9a-f]{16}$`).MatchString(id) {
		t.Fatalf("id after seq 2 = %q, want d-s:2:<epoch>", id)
	}
	s.resp.Body.Close()

	// Events published while the stream was gone arrive on reconnection,
	// after Last-Event-ID, each once, before live ones.
	publish(t, m.Addr, a, "d-s", "e", "3", "")
	publish(t, m.Addr, a, "d-s", "e", "4", "")
	s, _, _ = openSSE(t, m.Addr, "/app/"+a.Key+"/sse?channels=d-s", http.Header{"Last-Event-ID": {id}})
	var got []string
	for len(got) < 3 {
		if len(got) == 2 {
			publish(t, m.Addr, a, "d-s", "e", "5", "")
		}
		_, f := s.expect(t, "e", "d-s")
		got = append(got, f.data())
	}
	if !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Fatalf("after reconnecting from %s: %v", id, got)
	}
	s.resp.Body.Close()

	// A cursor from another epoch (a restarted embedded node's) is refused
	// explicitly, and the stream goes on live.
	s, _, _ = openSSE(t, m.Addr, "/app/"+a.Key+"/sse?channels=d-s", http.Header{"Last-Event-ID": {"d-s:4:0123456789abcdef"}})
	if _, f := s.expect(t, "herald:resume_failed", "d-s"); !strings.Contains(f.data(), `"reason":"epoch_changed"`) {
		t.Errorf("resume_failed %s", f.raw)
	}
	s.resp.Body.Close()
	// Both resumes are counted, and the refused one.
	metrics := string(rawRequest(t, m.Addr, http.MethodGet, "/metrics", nil).Body)
	for _, want := range []string{"\nherald_durable_resumes_total 2\n", "\nherald_durable_resumes_failed_total 1\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}

	// Private channels need a stream token for exactly their channel list.
	exp := time.Now().Add(time.Hour).Unix()
	token := func(user string, exp int64, channels ...string) string {
		slices.Sort(channels)
		msg := "herald-stream\n" + a.Key + "\n" + strings.Join(channels, "\n") + "\n" + user + "\n" + strconv.FormatInt(exp, 10)
		return a.Key + ":" + hmacHex(a.Secret, msg)
	}
	q := func(channels, auth, user string, exp int64) string {
		v := url.Values{"channels": {channels}, "auth": {auth}, "user_id": {user}, "expires": {strconv.FormatInt(exp, 10)}}
		return "/app/" + a.Key + "/sse?" + v.Encode()
	}
	for _, tc := range []struct {
		name, path string
		status     int
	}{
		{"no token", "/app/" + a.Key + "/sse?channels=private-x", 403},
		{"forged token", q("private-x", a.Key+":"+strings.Repeat("0", 64), "u1", exp), 401},
		{"expired token", q("private-x", token("u1", time.Now().Add(-time.Minute).Unix(), "private-x"), "u1", time.Now().Add(-time.Minute).Unix()), 401},
		{"token for another channel", q("private-x", token("u1", exp, "private-y"), "u1", exp), 401},
		{"token for another user", q("private-x", token("u1", exp, "private-x"), "u2", exp), 401},
		{"presence channel", "/app/" + a.Key + "/sse?channels=presence-x", 400},
		{"unknown key", "/app/nokey/sse?channels=news", 404},
		{"bad channel name", "/app/" + a.Key + "/sse?channels=a%20b", 400},
	} {
		if s, status, msg := openSSE(t, m.Addr, tc.path, nil); s != nil || status != tc.status || msg == "" {
			t.Errorf("%s: status %d %q, want %d with a message", tc.name, status, msg, tc.status)
		}
	}
	s, status, msg = openSSE(t, m.Addr, q("private-x,news", token("u1", exp, "news", "private-x"), "u1", exp), nil)
	if s == nil {
		t.Fatalf("valid token refused: %d %s", status, msg)
	}
	s.expect(t, "pusher_internal:subscription_succeeded", "private-x")
	publish(t, m.Addr, a, "private-y", "e", "not for this stream", "")
	publish(t, m.Addr, a, "private-x", "e", "for this stream", "")
	for {
		_, f := s.next(t)
		if f.Channel == "private-y" {
			t.Fatalf("the stream got another channel: %s", f.raw)
		}
		if f.Event == "e" && f.Channel == "private-x" {
			break
		}
	}
}

// TestSSEUserComesFromTheToken: a stream's user is the one its token names;
// a user_id without a token is not believed, so a policy rule for a user
// cannot be claimed from the query.
func TestSSEUserComesFromTheToken(t *testing.T) {
	a := cred{ID: "605", Key: "keyA", Secret: "secretA"}
	policy := `"policy":"allow user:admin staff subscribe\nallow * news subscribe\n"`
	m := startMain(t, testConfig(appsJSON(appJSON(a, policy, ""))))
	if s, status, msg := openSSE(t, m.Addr, "/app/"+a.Key+"/sse?channels=staff&user_id=admin", nil); s != nil || status != 403 || !strings.Contains(msg, "policy") {
		t.Fatalf("staff with a claimed user: %d %q", status, msg)
	}
	// herald stream-token prints what the app's backend would compute.
	var out strings.Builder
	if err := streamTokenCommand([]string{"--key", a.Key, "--secret", a.Secret, "--user", "admin", "staff"}, &out); err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(strings.TrimSpace(out.String()))
	if err != nil || q.Get("user_id") != "admin" || q.Get("auth") != a.Key+":"+hmacHex(a.Secret, "herald-stream\n"+a.Key+"\nstaff\nadmin\n"+q.Get("expires")) {
		t.Fatalf("stream-token printed %q (%v)", out.String(), err)
	}
	if s, status, msg := openSSE(t, m.Addr, "/app/"+a.Key+"/sse?channels=staff&"+q.Encode(), nil); s == nil {
		t.Fatalf("staff with admin's token: %d %q", status, msg)
	}
	if err := streamTokenCommand([]string{"--key", a.Key, "--secret", a.Secret, "--ttl", "48h", "staff"}, &out); err == nil {
		t.Errorf("a 48h token was printed")
	}
}

// TestRetentionByAge: the node's retention loop removes events past their
// channel's max_age, and a cursor before them is then refused as expired.
func TestRetentionByAge(t *testing.T) {
	a := cred{ID: "606", Key: "keyA", Secret: "secretA"}
	cfg := testConfig(appsJSON(appJSON(a, `"settings":{"durable":[{"pattern":"d-*","max_age":"1s"}]}`, "")))
	cfg.HistoryTrimInterval = time.Second
	m := startMain(t, cfg)
	for i := range 3 {
		publish(t, m.Addr, a, "d-old", "e", strconv.Itoa(i), "")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, p := readHistory(t, m.Addr, a, "d-old", nil)
		if status == 410 && p.Reason == "expired" && p.OldestSeq == 4 && p.Head == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events older than max_age still held: %d %+v", status, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	publish(t, m.Addr, a, "d-old", "e", "new", "")
	if status, p := readHistory(t, m.Addr, a, "d-old", url.Values{"after_seq": {"3"}}); status != 200 || len(p.Events) != 1 || p.Events[0].Seq != 4 {
		t.Errorf("after the trim: %d %+v", status, p)
	}
}
