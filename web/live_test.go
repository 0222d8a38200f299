package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldrt/herald/services/gateway"
)

// The live view's figures cover the cluster: connections per node and in
// total, channels busiest first, presence channels with their users; the
// debug stream is not listed.
func TestLiveData(t *testing.T) {
	f := newConsole(t)
	f.gateway.connections = map[string]map[string]int{"acme1": {"node-b": 3, "node-a": 2}, "globex1": {"node-a": 9}}
	f.gateway.subscriptions["acme1/news"] = 4
	f.gateway.subscriptions["acme1/presence-room"] = 7
	f.gateway.subscriptions["acme1/#herald-debug"] = 1
	f.gateway.subscriptions["globex1/secret"] = 5
	b := f.browser(t).signIn(viewerEmail)
	status, body := b.get("/console/apps/acme1/live.json")
	if status != http.StatusOK {
		t.Fatalf("live.json: %d %s", status, body)
	}
	var live struct {
		Connections int `json:"connections"`
		Nodes       []struct {
			Node        string `json:"node"`
			Connections int    `json:"connections"`
		} `json:"nodes"`
		Channels []struct {
			Name          string `json:"name"`
			Subscriptions int    `json:"subscriptions"`
		} `json:"channels"`
	}
	if err := json.Unmarshal([]byte(body), &live); err != nil {
		t.Fatal(err)
	}
	if live.Connections != 5 || len(live.Nodes) != 2 || live.Nodes[0].Node != "node-a" || live.Nodes[0].Connections != 2 {
		t.Errorf("connections: %s", body)
	}
	if len(live.Channels) != 2 || live.Channels[0].Name != "presence-room" || live.Channels[1].Name != "news" {
		t.Errorf("channels: %s", body)
	}
	if strings.Contains(body, "secret") || strings.Contains(body, "herald-debug") {
		t.Errorf("another app's channel or the debug stream is listed: %s", body)
	}
	if status, page := b.get("/console/apps/acme1/live"); status != http.StatusOK || !strings.Contains(page, `src="/live.js"`) {
		t.Errorf("live page: %d", status)
	}
}

// The debug page gives its own connection a token that opens exactly this
// app's stream; a viewer may not watch it.
func TestDebugToken(t *testing.T) {
	f := newConsole(t)
	op := f.browser(t).signIn(operatorEmail)
	status, page := op.get("/console/apps/acme1/debug")
	if status != http.StatusOK || !strings.Contains(page, `src="/debug.js"`) || !strings.Contains(page, `data-key="`) {
		t.Fatalf("debug page: %d\n%s", status, page)
	}
	resp, body := op.post("/console/apps/acme1/debug/token", url.Values{"socket_id": {"123.456"}})
	var got struct{ Auth string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil ||
		got.Auth != gateway.DebugToken([]byte(testDebugKey), "acme1", "123.456") {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	if resp, _ := op.post("/console/apps/acme1/debug/token", url.Values{"socket_id": {"x"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad socket id: %d", resp.StatusCode)
	}
	viewer := f.browser(t).signIn(viewerEmail)
	if status, _ := viewer.get("/console/apps/acme1/debug"); status != http.StatusForbidden {
		t.Errorf("a viewer on the debug stream: %d", status)
	}
}
