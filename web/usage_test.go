package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/billing"
)

// The usage page sums today's messages and the connections open now per
// app, and charts the last hour; another tenant's usage is not included.
func TestUsagePage(t *testing.T) {
	f := newConsole(t)
	now := f.now.UTC()
	f.gateway.connections = map[string]map[string]int{"acme1": {"a": 2, "b": 1}, "globex1": {"a": 50}}
	rows := []billing.Minute{
		{AppID: "acme1", Minute: now.Add(-2 * time.Minute), Node: "a", Published: 40, Delivered: 400, Connections: 3},
		{AppID: "acme1", Minute: now.Add(-time.Minute), Node: "a", Published: 2, Connections: 3},
		{AppID: "acme1", Minute: now.Add(-48 * time.Hour), Node: "a", Published: 1000},
		{AppID: "globex1", Minute: now, Node: "a", Published: 999},
	}
	if err := f.usage.Add(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	status, page := f.browser(t).signIn(viewerEmail).get("/console/tenants/acme/usage")
	if status != http.StatusOK {
		t.Fatalf("usage page: %d", status)
	}
	for _, want := range []string{"<dt>Connections now</dt><dd>3</dd>", "<dt>Messages today</dt><dd>42</dd>", "<dt>Deliveries today</dt><dd>400</dd>", "<polyline points=", "at most 40"} {
		if !strings.Contains(page, want) {
			t.Errorf("usage page lacks %q", want)
		}
	}
	if strings.Contains(page, "999") || strings.Contains(page, ">50<") {
		t.Error("globex's usage is on acme's page")
	}
}

// Chart points run across the view box, the highest value at the top.
func TestLineChart(t *testing.T) {
	c := lineChart("x", "x", []int64{0, 5, 10}, time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC))
	if c.Points != "0.0,160.0 300.0,80.0 600.0,0.0" || c.Max != 10 || c.First != "10:00" || c.Last != "10:02 UTC" {
		t.Errorf("chart: %+v", c)
	}
	if !lineChart("x", "x", []int64{0, 0}, time.Now()).Empty {
		t.Error("an all-zero chart is not empty")
	}
}
