package main

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"
)

// TestTrustedProxies_DOS1: X-Forwarded-For names the client only when the
// peer is a configured proxy, and then only the hop that proxy added.
func TestTrustedProxies_DOS1(t *testing.T) {
	for _, tc := range []struct {
		name, proxies, want, notWant string
	}{
		{"trusted", "127.0.0.1", "198.51.100.7", "6.6.6.6"},
		{"untrusted", "", "127.0.0.1", "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			cfg := testConfig(appsJSON(appJSON(cred{ID: "1", Key: "key1", Secret: "s"}, "", "")))
			cfg.TrustedProxies = tc.proxies
			m := &Main{Config: cfg, Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			if err := m.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close() })
			header := http.Header{"X-Forwarded-For": {"6.6.6.6, 198.51.100.7"}}
			conn, _, err := websocket.DefaultDialer.Dial("ws://"+m.Addr+"/app/nokey?protocol=7", header)
			if err != nil {
				t.Fatal(err)
			}
			_, _, _ = conn.ReadMessage() // the 4001 refusal
			conn.Close()
			waitFor(t, "the refusal to be logged", func() bool { return strings.Contains(logs.String(), "connection refused") })
			line := logs.String()[strings.Index(logs.String(), "connection refused"):]
			line = line[:strings.IndexByte(line, '\n')]
			if !strings.Contains(line, "ip="+tc.want) || strings.Contains(line, tc.notWant) {
				t.Errorf("log line %q: want ip=%s and no %s", line, tc.want, tc.notWant)
			}
		})
	}
}
