package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMain_BootsOnPort0(t *testing.T) {
	t.Parallel()

	// No apps configured: Run makes a demo app.
	m := &Main{Config: testConfig("")}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() }) // a second Close must not hang
	host, port, err := net.SplitHostPort(m.Addr)
	if err != nil || host != "127.0.0.1" || port == "0" || port == "" {
		t.Fatalf("m.Addr = %q: want 127.0.0.1 and the real port", m.Addr)
	}

	r := rawRequest(t, m.Addr, http.MethodGet, "/healthz", nil)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.ContentType, "application/json") {
		t.Fatalf("/healthz: status %d, content type %q", r.Status, r.ContentType)
	}
	var health map[string]any
	if err := json.Unmarshal(r.Body, &health); err != nil || len(health) != 1 || health["status"] != "ok" {
		t.Fatalf(`/healthz body %s: want {"status":"ok"}`, r.Body)
	}
	r = rawRequest(t, m.Addr, http.MethodGet, "/readyz", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("/readyz: status %d, body %s", r.Status, r.Body)
	}
	var ready struct{ Ready bool }
	if err := json.Unmarshal(r.Body, &ready); err != nil || !ready.Ready {
		t.Fatalf(`/readyz body %s: want {"ready":true}`, r.Body)
	}
	metricsHas := func(line string) bool {
		r := rawRequest(t, m.Addr, http.MethodGet, "/metrics", nil)
		if r.Status != http.StatusOK || !strings.HasPrefix(r.ContentType, "text/plain") {
			t.Fatalf("/metrics: status %d, content type %q", r.Status, r.ContentType)
		}
		for _, l := range strings.Split(string(r.Body), "\n") {
			if l == line {
				return true
			}
		}
		return false
	}
	if !metricsHas("herald_connections 0") {
		t.Fatal(`/metrics has no line "herald_connections 0" before any connection`)
	}

	if m.DemoApp == nil {
		t.Fatal("no apps configured, but m.DemoApp is nil")
	}
	if !m.DemoApp.Enabled || m.DemoApp.ID == "" || len(m.DemoApp.Keys) == 0 {
		t.Fatalf("demo app is not usable: %+v", m.DemoApp)
	}
	demo := cred{ID: m.DemoApp.ID, Key: m.DemoApp.PrimaryKey().Key, Secret: m.DemoApp.PrimaryKey().Secret.Reveal()}
	ws := dial(t, m.Addr, demo.Key) // checks the socket_id shape and activity_timeout
	ws.subscribeOK("my-channel", "", "")
	publish(t, m.Addr, demo, "my-channel", "my-event", `{"message":"hello"}`, "")
	if f := ws.expectEvent("my-event", "my-channel"); f.data() != `{"message":"hello"}` {
		t.Fatalf("demo app event data = %q", f.data())
	}
	waitFor(t, "herald_connections 1 in /metrics", func() bool { return metricsHas("herald_connections 1") })

	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close asks clients to reconnect elsewhere.
	ws.expectClosed(4200, waitTimeout)
	if c, err := net.DialTimeout("tcp", m.Addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Close", m.Addr)
	}

	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("second Close: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("a second Close hangs")
	}
}

func TestMain_ConfiguredAppsNoDemo(t *testing.T) {
	t.Parallel()
	app := cred{"1", "key1", "secret1"}
	m := startMain(t, testConfig(appsJSON(appJSON(app, "", ""))))
	if m.DemoApp != nil {
		t.Fatalf("apps were configured, but a demo app %s was made", m.DemoApp.ID)
	}
	ws := dial(t, m.Addr, app.Key)
	ws.ping()
}

func TestMain_BadAppsFailRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fileApp := filepath.Join(dir, "apps.json")
	if err := os.WriteFile(fileApp, []byte(appsJSON(appJSON(cred{"2", "dupkey", "s2"}, "", ""))), 0o600); err != nil {
		t.Fatal(err)
	}
	sameID := filepath.Join(dir, "same-id.json")
	if err := os.WriteFile(sameID, []byte(appsJSON(appJSON(cred{"1", "otherkey", "s2"}, "", ""))), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, apps, file, want string
	}{
		{"InvalidJSON", `[{"id":`, "", "apps"},
		{"UnknownField", `[{"id":"1","key":"k","secret":"s","sekret":"x"}]`, "", "sekret"},
		{"BadLimit", appsJSON(appJSON(cred{"1", "k", "s"}, "", `"max_batch_events":-1`)), "", "max_batch_events"},
		{"DuplicateID", appsJSON(appJSON(cred{"1", "k1", "s"}, "", ""), appJSON(cred{"1", "k2", "s"}, "", "")), "", `"1"`},
		{"DuplicateKeyAcrossSources", appsJSON(appJSON(cred{"1", "dupkey", "s1"}, "", "")), fileApp, "dupkey"},
		{"DuplicateIDAcrossSources", appsJSON(appJSON(cred{"1", "k1", "s1"}, "", "")), sameID, `"1"`},
		{"MissingFile", "", filepath.Join(dir, "missing.json"), "missing.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.apps)
			cfg.AppsFile = tc.file
			m := &Main{Config: cfg}
			err := m.Run(context.Background())
			defer m.Close()
			if err == nil {
				t.Fatalf("Run accepted apps %s / file %s", tc.apps, tc.file)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run error %q does not name %s", err, tc.want)
			}
		})
	}
}
