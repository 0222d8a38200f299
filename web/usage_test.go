package web

import (
	"net/http"
	"net/url"
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

// Platform admins create tenants from the tenants page; nobody else can,
// and the form needs the session's CSRF token.
func TestCreateTenantPage(t *testing.T) {
	f := newConsole(t)
	admin := f.browser(t).signIn(adminEmail)
	if _, page := admin.get("/console/"); !strings.Contains(page, "Create a tenant") || !strings.Contains(page, `<option value="free" selected>`) {
		t.Fatalf("the admin's tenants page has no create form:\n%s", page)
	}
	resp, _ := admin.post("/console/tenants", url.Values{"name": {"Hooli"}, "id": {"hooli"}, "plan": {"pro"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/tenants/hooli" {
		t.Fatalf("create: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	tn, err := f.con.Apps.Tenant(t.Context(), "hooli")
	if err != nil || tn.Plan != "pro" {
		t.Fatalf("created tenant: %+v, %v", tn, err)
	}
	if resp, page := admin.post("/console/tenants", url.Values{"name": {"Again"}, "id": {"hooli"}}); resp.StatusCode != http.StatusConflict || !strings.Contains(page, "Again") {
		t.Errorf("a taken id: %d", resp.StatusCode)
	}
	if resp, _ := admin.do(http.MethodPost, "/console/tenants", url.Values{"name": {"NoToken"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("without the CSRF token: %d", resp.StatusCode)
	}
	owner := f.browser(t).signIn(ownerEmail)
	if _, page := owner.get("/console/"); strings.Contains(page, "Create a tenant") {
		t.Error("a tenant owner sees the create form")
	}
	if resp, _ := owner.post("/console/tenants", url.Values{"name": {"Mine"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a tenant owner creating a tenant: %d", resp.StatusCode)
	}
}
