package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/tenants"
)

// waitTimeout bounds every wait for something that should happen. Failures
// that are expected to be fast (a frame that should arrive) only reach it
// when the server misbehaves.
const waitTimeout = 5 * time.Second

// testConfig is the configuration every test starts from: an ephemeral
// port and production-like limits, with liveness timeouts long enough that
// no test but TestActivityTimeout ever sees a server ping.
func testConfig(apps string) Config {
	return Config{
		Addr:            "127.0.0.1:0",
		Apps:            apps,
		ActivityTimeout: 60 * time.Second,
		PongTimeout:     30 * time.Second,
		MaxFrameBytes:   32 << 10,
		QueueFrames:     1000,
		QueueBytes:      1 << 20,
		ShutdownTimeout: 5 * time.Second,
	}
}

// startMain boots a whole node on an ephemeral port and closes it when the
// test ends.
func startMain(t *testing.T, cfg Config) *Main {
	t.Helper()
	m := &Main{Config: cfg}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// cred is one app's id and credentials as a test knows them.
type cred struct{ ID, Key, Secret string }

func (c cred) tenantsKey() tenants.Key {
	return tenants.Key{Key: c.Key, Secret: tenants.NewSecret(c.Secret)}
}

// appJSON renders one HERALD_APPS entry; extra is spliced into the object
// (e.g. `"enabled":false`) and limits into settings.limits.
func appJSON(c cred, extra, limits string) string {
	s := fmt.Sprintf(`{"id":%q,"key":%q,"secret":%q,"name":"app %s","settings":{"limits":{%s},"features":{"client_events":true}}`,
		c.ID, c.Key, c.Secret, c.ID, limits)
	if extra != "" {
		s += "," + extra
	}
	return s + "}"
}

func appsJSON(entries ...string) string { return "[" + strings.Join(entries, ",") + "]" }

// --- signatures computed independently of authz ---------------------------

// hmacHex is HMAC-SHA256 in lower-case hex, written here rather than taken
// from authz so that the tests check authz against the protocol, not
// against itself.
func hmacHex(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// handChannelToken is a private/presence token per protocol reference §7.1/§7.2.
func handChannelToken(c cred, socketID, channel, channelData string) string {
	msg := socketID + ":" + channel
	if channelData != "" {
		msg += ":" + channelData
	}
	return c.Key + ":" + hmacHex(c.Secret, msg)
}

// handSignParams returns the query parameters of a REST request signed as in
// protocol reference §8.1, with auth_signature included, computed without
// authz. ts is the auth_timestamp.
func handSignParams(c cred, method, path string, params url.Values, body []byte, ts int64) url.Values {
	q := url.Values{}
	for k, vs := range params {
		q[strings.ToLower(k)] = slices.Clone(vs)
	}
	q.Set("auth_key", c.Key)
	q.Set("auth_timestamp", strconv.FormatInt(ts, 10))
	q.Set("auth_version", "1.0")
	if len(body) > 0 {
		sum := md5.Sum(body)
		q.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		vs := slices.Clone(q[k])
		slices.Sort(vs)
		for _, v := range vs {
			parts = append(parts, k+"="+v)
		}
	}
	q.Set("auth_signature", hmacHex(c.Secret, method+"\n"+path+"\n"+strings.Join(parts, "&")))
	return q
}

// --- REST ------------------------------------------------------------------

type restResponse struct {
	Status      int
	ContentType string
	Header      http.Header
	Body        []byte
}

// errorMessage decodes a {"error": "..."} body.
func (r restResponse) errorMessage(t *testing.T) string {
	t.Helper()
	var e struct {
		Error *string `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == nil {
		t.Fatalf("status %d: body %q is not JSON {\"error\": string} (%v)", r.Status, r.Body, err)
	}
	return *e.Error
}

var httpClient = &http.Client{Timeout: waitTimeout}

// rawRequest sends method to http://addr+pathAndQuery exactly as given.
func rawRequest(t *testing.T, addr, method, pathAndQuery string, body []byte) restResponse {
	t.Helper()
	return requestWith(t, addr, method, pathAndQuery, nil, body)
}

// operatorRequest calls the management API with the operator token; body,
// if not nil, is sent as JSON.
func operatorRequest(t *testing.T, addr, token, method, path string, body any) restResponse {
	t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	return requestWith(t, addr, method, path, http.Header{"Authorization": {"Bearer " + token}}, b)
}

func requestWith(t *testing.T, addr, method, pathAndQuery string, header http.Header, body []byte) restResponse {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+pathAndQuery, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(req.Header, header)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, pathAndQuery, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, pathAndQuery, err)
	}
	return restResponse{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Header: resp.Header, Body: b}
}

// rawTCPRequest sends one HTTP/1.1 request over a plain TCP connection,
// writing the body concurrently with reading the answer and ignoring write
// errors, so that an answer the server sends before it has read the body
// (and then resets the connection) is still seen.
func rawTCPRequest(t *testing.T, addr, method, pathAndQuery string, body []byte) restResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	go func() {
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", method, pathAndQuery, addr, len(body))
		_, _ = conn.Write(body)
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: no HTTP answer: %v", method, pathAndQuery, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, pathAndQuery, err)
	}
	return restResponse{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}
}

// signedRequest sends a request signed with authz.SignRequest (the way
// Herald's own clients sign).
func signedRequest(t *testing.T, addr string, c cred, method, path string, params url.Values, body []byte) restResponse {
	t.Helper()
	q := authz.SignRequest(c.tenantsKey(), method, path, params, body, time.Now())
	return rawRequest(t, addr, method, path+"?"+q, body)
}

// publish triggers one event through the REST API and requires 200.
func publish(t *testing.T, addr string, c cred, channel, event, data, socketID string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"name": event, "data": data, "channels": []string{channel}, "socket_id": socketID})
	r := signedRequest(t, addr, c, http.MethodPost, "/apps/"+c.ID+"/events", nil, body)
	if r.Status != http.StatusOK {
		t.Fatalf("publish %s to %s: status %d, body %s", event, channel, r.Status, r.Body)
	}
}

// channelInfo returns GET /channels/{channel} with info.
func channelInfo(t *testing.T, addr string, c cred, channel, info string) map[string]any {
	t.Helper()
	r := signedRequest(t, addr, c, http.MethodGet, "/apps/"+c.ID+"/channels/"+channel, url.Values{"info": {info}}, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET channel %s: status %d, body %s", channel, r.Status, r.Body)
	}
	var out map[string]any
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("GET channel %s: %v (%s)", channel, err, r.Body)
	}
	return out
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --- WebSocket client ------------------------------------------------------

// frame is one server frame.
type frame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	UserID  *string         `json:"user_id"`
	raw     string
}

func (f frame) String() string { return f.raw }

// data returns the frame's data: the content of a JSON string, or the raw
// JSON text of any other value.
func (f frame) data() string {
	var s string
	if json.Unmarshal(f.Data, &s) == nil {
		return s
	}
	return string(f.Data)
}

// decodeData decodes the frame's data (unwrapping a JSON string first).
func (f frame) decodeData(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(f.data()), v); err != nil {
		t.Fatalf("frame %s: data does not decode: %v", f.raw, err)
	}
}

// pusherError is the data of a pusher:error frame; Code is nil for null.
type pusherError struct {
	Code    *int   `json:"code"`
	Message string `json:"message"`
}

func (f frame) pusherError(t *testing.T) pusherError {
	t.Helper()
	if f.Event != "pusher:error" {
		t.Fatalf("want pusher:error, got %s", f.raw)
	}
	var e pusherError
	// pusher:error carries an object (§3.5), not a string.
	if err := json.Unmarshal(f.Data, &e); err != nil {
		t.Fatalf("pusher:error data is not an object {code, message}: %s", f.raw)
	}
	if !bytes.Contains(f.Data, []byte(`"code"`)) {
		t.Fatalf("pusher:error has no code field: %s", f.raw)
	}
	return e
}

// wsConn is a test WebSocket client. A reader goroutine feeds frames into a
// channel, so waits are bounded with select and a wait that times out does
// not break the connection.
type wsConn struct {
	t        *testing.T
	name     string
	conn     *websocket.Conn
	frames   chan frame
	SocketID string

	// Set by the reader before frames is closed.
	closeCode int // the close code received, or -1
	readErr   error
	closing   atomic.Bool
}

var connSeq atomic.Int64

var socketIDPattern = regexp.MustCompile(`^\d+\.\d+$`)

// dialRaw opens a WebSocket to path (e.g. "/app/key1?protocol=7") and reads
// nothing yet.
func dialRaw(t *testing.T, addr, path string) *wsConn {
	t.Helper()
	d := *websocket.DefaultDialer
	d.HandshakeTimeout = waitTimeout
	conn, resp, err := d.Dial("ws://"+addr+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	w := &wsConn{t: t, name: fmt.Sprintf("conn%d", connSeq.Add(1)), conn: conn, frames: make(chan frame, 4096), closeCode: -1}
	go w.read()
	t.Cleanup(func() { w.close() })
	return w
}

// dial connects to app key with protocol 7 and waits for
// pusher:connection_established, which must be the first frame.
func dial(t *testing.T, addr, key string) *wsConn {
	t.Helper()
	w := dialRaw(t, addr, "/app/"+key+"?protocol=7")
	f := w.next()
	if f.Event != "pusher:connection_established" {
		t.Fatalf("first frame: want pusher:connection_established, got %s", f.raw)
	}
	var est struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout *int   `json:"activity_timeout"`
	}
	f.decodeData(t, &est)
	if !socketIDPattern.MatchString(est.SocketID) {
		t.Fatalf("socket_id %q does not match ^\\d+\\.\\d+$", est.SocketID)
	}
	if est.ActivityTimeout == nil || *est.ActivityTimeout <= 0 {
		t.Fatalf("connection_established has no positive activity_timeout: %s", f.raw)
	}
	w.SocketID = est.SocketID
	return w
}

func (w *wsConn) read() {
	defer close(w.frames)
	for {
		_ = w.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		typ, b, err := w.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				w.closeCode = ce.Code
			}
			w.readErr = err
			return
		}
		f := frame{raw: string(b)}
		if typ != websocket.TextMessage {
			f.raw = fmt.Sprintf("<non-text message type %d: %q>", typ, b)
		} else if err := json.Unmarshal(b, &f); err != nil {
			f.raw = fmt.Sprintf("<invalid JSON %q>", b)
		}
		w.frames <- f
	}
}

func (w *wsConn) close() {
	if w.closing.Swap(true) {
		return
	}
	_ = w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = w.conn.Close()
}

// sendRaw writes one text frame.
func (w *wsConn) sendRaw(s string) {
	w.t.Helper()
	_ = w.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if err := w.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		w.t.Fatalf("%s: write: %v", w.name, err)
	}
}

// send writes v as JSON.
func (w *wsConn) send(v any) {
	w.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		w.t.Fatal(err)
	}
	w.sendRaw(string(b))
}

// next returns the next frame, failing if none arrives in time or the
// connection ends.
func (w *wsConn) next() frame {
	w.t.Helper()
	select {
	case f, ok := <-w.frames:
		if !ok {
			w.t.Fatalf("%s: connection ended (close code %d, %v) while waiting for a frame", w.name, w.closeCode, w.readErr)
		}
		return f
	case <-time.After(waitTimeout):
		w.t.Fatalf("%s: no frame within %v", w.name, waitTimeout)
	}
	panic("unreachable")
}

// expect returns the first frame matching match, skipping others.
func (w *wsConn) expect(what string, match func(frame) bool) frame {
	w.t.Helper()
	deadline := time.After(waitTimeout)
	var seen []string
	for {
		select {
		case f, ok := <-w.frames:
			if !ok {
				w.t.Fatalf("%s: connection ended (close code %d, %v) while waiting for %s; saw %v", w.name, w.closeCode, w.readErr, what, seen)
			}
			if match(f) {
				return f
			}
			seen = append(seen, f.raw)
		case <-deadline:
			w.t.Fatalf("%s: no %s within %v; saw %v", w.name, what, waitTimeout, seen)
		}
	}
}

// expectEvent waits for event on channel ("" for connection events).
func (w *wsConn) expectEvent(event, channel string) frame {
	w.t.Helper()
	return w.expect(event+" on "+channel, func(f frame) bool { return f.Event == event && f.Channel == channel })
}

// until returns every frame before the first frame of event on channel,
// which must arrive. It is how tests prove that something did not arrive:
// a marker published after it comes through the same ordered queue.
func (w *wsConn) until(event, channel string) []frame {
	w.t.Helper()
	var before []frame
	w.expect("marker "+event+" on "+channel, func(f frame) bool {
		if f.Event == event && f.Channel == channel {
			return true
		}
		before = append(before, f)
		return false
	})
	return before
}

// expectError waits for a pusher:error and returns its data.
func (w *wsConn) expectError() pusherError {
	w.t.Helper()
	return w.expectEvent("pusher:error", "").pusherError(w.t)
}

// ping sends pusher:ping and returns the frames that arrived before the
// pusher:pong, which must come.
func (w *wsConn) ping() []frame {
	w.t.Helper()
	w.sendRaw(`{"event":"pusher:ping","data":{}}`)
	return w.until("pusher:pong", "")
}

// expectClosed drains frames until the server closes the connection and
// checks the close code. It returns the frames read before the close.
func (w *wsConn) expectClosed(code int, within time.Duration) []frame {
	w.t.Helper()
	deadline := time.After(within)
	var seen []frame
	for {
		select {
		case f, ok := <-w.frames:
			if !ok {
				if w.closeCode != code {
					w.t.Fatalf("%s: want close code %d, got %d (%v); frames before: %v", w.name, code, w.closeCode, w.readErr, seen)
				}
				return seen
			}
			seen = append(seen, f)
		case <-deadline:
			w.t.Fatalf("%s: not closed within %v; saw %v", w.name, within, seen)
		}
	}
}

// subscribe sends pusher:subscribe; auth and channelData may be empty
// (channelData is left out when empty).
func (w *wsConn) subscribe(channel, auth, channelData string) {
	w.t.Helper()
	d := map[string]string{"channel": channel, "auth": auth}
	if channelData != "" {
		d["channel_data"] = channelData
	}
	w.send(map[string]any{"event": "pusher:subscribe", "data": d})
}

// subscribeOK subscribes and waits for subscription_succeeded.
func (w *wsConn) subscribeOK(channel, auth, channelData string) frame {
	w.t.Helper()
	w.subscribe(channel, auth, channelData)
	return w.expect("subscription_succeeded on "+channel, func(f frame) bool {
		if f.Event == "pusher:subscription_error" && f.Channel == channel {
			w.t.Fatalf("%s: subscription to %s refused: %s", w.name, channel, f.raw)
		}
		return f.Event == "pusher_internal:subscription_succeeded" && f.Channel == channel
	})
}

// subscriptionError is the data of pusher:subscription_error.
type subscriptionError struct {
	Type   string `json:"type"`
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// subscribeRefused subscribes and requires a pusher:subscription_error on
// the channel (and no success before it).
func (w *wsConn) subscribeRefused(channel, auth, channelData string) subscriptionError {
	w.t.Helper()
	w.subscribe(channel, auth, channelData)
	f := w.expect("subscription_error on "+channel, func(f frame) bool {
		if f.Event == "pusher_internal:subscription_succeeded" && f.Channel == channel {
			w.t.Fatalf("%s: subscription to %s was accepted, want it refused", w.name, channel)
		}
		return f.Event == "pusher:subscription_error" && f.Channel == channel
	})
	var e subscriptionError
	f.decodeData(w.t, &e)
	if e.Error == "" || e.Status == 0 {
		w.t.Fatalf("subscription_error without error text or status: %s", f.raw)
	}
	return e
}

// signin signs the connection in with userData using token and waits for
// pusher:signin_success.
func (w *wsConn) signin(token, userData string) {
	w.t.Helper()
	w.send(map[string]any{"event": "pusher:signin", "data": map[string]string{"auth": token, "user_data": userData}})
	f := w.expect("pusher:signin_success", func(f frame) bool {
		if f.Event == "pusher:error" {
			w.t.Fatalf("%s: sign-in refused: %s", w.name, f.raw)
		}
		return f.Event == "pusher:signin_success"
	})
	var d struct {
		UserData string `json:"user_data"`
	}
	f.decodeData(w.t, &d)
	if d.UserData != userData {
		w.t.Fatalf("signin_success user_data = %q, want the exact string sent %q", d.UserData, userData)
	}
}

// clientEvent sends a client event.
func (w *wsConn) clientEvent(channel, event string, data any) {
	w.t.Helper()
	w.send(map[string]any{"event": event, "channel": channel, "data": data})
}

// noneOf fails if any frame matches.
func noneOf(t *testing.T, frames []frame, what string, match func(frame) bool) {
	t.Helper()
	for _, f := range frames {
		if match(f) {
			t.Fatalf("unexpected %s: %s", what, f.raw)
		}
	}
}

func isEvent(event, channel string) func(frame) bool {
	return func(f frame) bool { return f.Event == event && f.Channel == channel }
}
