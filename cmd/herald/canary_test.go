package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecretCanary_SEC3 runs the REST and WebSocket paths, good and bad, at
// debug log level with a canary secret and an operator token, then looks
// for the canary, the token and every auth_signature sent in the logs,
// /metrics and the error bodies.
func TestSecretCanary_SEC3(t *testing.T) {
	const canary = "CANARY-secret-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
	const token = "CANARY-token-0a1b2c3d4e5f"
	app := cred{ID: "1", Key: "canarykey", Secret: canary}
	logs := &syncBuffer{}
	cfg := testConfig(appsJSON(appJSON(app, "", "")))
	cfg.AdminToken = token
	m := &Main{Config: cfg, Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })

	var seen []string // everything a response sent back
	var signatures []string
	signed := func(method, path string, params url.Values, body []byte) {
		r := signedRequest(t, m.Addr, app, method, path, params, body)
		seen = append(seen, string(r.Body))
	}
	signed(http.MethodPost, "/apps/1/events", nil, []byte(`{"name":"e","data":"x","channels":["c"]}`))
	signed(http.MethodPost, "/apps/1/events", nil, []byte(`{"name":"pusher:e","data":"x","channels":["c"]}`))
	signed(http.MethodGet, "/apps/1/channels", url.Values{"info": {"nope"}}, nil)
	wrong := cred{ID: "1", Key: "canarykey", Secret: "not-the-secret"}
	r := signedRequest(t, m.Addr, wrong, http.MethodPost, "/apps/1/events", nil, []byte(`{"name":"e","data":"x","channels":["c"]}`))
	seen = append(seen, string(r.Body))
	for _, q := range []string{"auth_signature=" + hmacHex(canary, "x"), "auth_key=canarykey&auth_signature=" + strings.Repeat("ab", 32)} {
		signatures = append(signatures, strings.TrimPrefix(q[strings.Index(q, "auth_signature="):], "auth_signature="))
		seen = append(seen, string(rawRequest(t, m.Addr, http.MethodGet, "/apps/1/channels?"+q, nil).Body))
	}
	for _, h := range []string{"Bearer wrong", "Bearer " + token} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+m.Addr+"/v1/apps/1", nil)
		req.Header.Set("Authorization", h)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		seen = append(seen, body.String())
	}

	w := dial(t, m.Addr, app.Key)
	token1 := handChannelToken(app, "1.2", "private-x", "")
	signatures = append(signatures, token1[strings.Index(token1, ":")+1:])
	w.send(map[string]any{"event": "pusher:subscribe", "data": map[string]string{"channel": "private-x", "auth": token1}})
	w.expectEvent("pusher:subscription_error", "private-x")
	w.sendRaw(`{"event":"pusher:signin","data":{"auth":"canarykey:` + strings.Repeat("cd", 32) + `","user_data":"{\"id\":\"u\"}"}}`)
	w.expectError()
	w.sendRaw(`not json`)
	w.expectError()

	metrics := rawRequest(t, m.Addr, http.MethodGet, "/metrics", nil)
	seen = append(seen, string(metrics.Body))
	_ = m.Close()

	everything := logs.String() + strings.Join(seen, "\n")
	if !strings.Contains(logs.String(), "listening") {
		t.Fatal("the test captured no logs")
	}
	for _, needle := range append([]string{canary, token}, signatures...) {
		if strings.Contains(everything, needle) {
			t.Errorf("%q leaked:\n%s", needle, excerpt(everything, needle))
		}
	}
	var app1 map[string]any
	if err := json.Unmarshal([]byte(seen[len(seen)-2]), &app1); err != nil || app1["app"] == nil {
		t.Fatalf("the operator request did not succeed: %s", seen[len(seen)-2])
	}
}

func excerpt(s, needle string) string {
	i := strings.Index(s, needle)
	lo, hi := max(0, i-200), min(len(s), i+len(needle)+200)
	return fmt.Sprintf("…%s…", s[lo:hi])
}
