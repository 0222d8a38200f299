package web

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/tenants"
)

// entries returns the chain's audit entries in seq order.
func (f *consoleFixture) entries(t *testing.T, chain string) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	if err := f.audit.Walk(context.Background(), chain, func(e audit.Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// last returns the chain's newest entry, failing if it is not action.
func (f *consoleFixture) last(t *testing.T, chain, action string) audit.Entry {
	t.Helper()
	es := f.entries(t, chain)
	if len(es) == 0 || es[len(es)-1].Action != action {
		t.Fatalf("newest entry of %s is not %s: %+v", chain, action, es)
	}
	return es[len(es)-1]
}

func mustContain(t *testing.T, page string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %q:\n%s", w, page)
		}
	}
}

func TestConsoleTenantPage(t *testing.T) {
	f := newConsole(t)
	owner := f.browser(t).signIn(ownerEmail)
	status, page := owner.get("/console/tenants/acme")
	if status != http.StatusOK {
		t.Fatalf("tenant page: %d", status)
	}
	mustContain(t, page, `<a href="/console/apps/acme1">Acme Chat</a>`, "free", "active", `action="/console/tenants/acme/apps"`,
		`<a href="/console/audit?tenant=acme"`, `aria-label="Breadcrumb"`)
	if strings.Contains(page, "/suspend") {
		t.Error("an owner is offered to suspend the tenant")
	}

	// The home page links each tenant to its page.
	if _, home := owner.get("/console/"); !strings.Contains(home, `<a href="/console/tenants/acme">Acme</a>`) {
		t.Errorf("home does not link the tenant:\n%s", home)
	}

	// A viewer sees the apps but no form to create one.
	_, page = f.browser(t).signIn(viewerEmail).get("/console/tenants/acme")
	mustContain(t, page, "Acme Chat")
	if strings.Contains(page, "Create app") {
		t.Error("a viewer is offered to create an app")
	}

	// Creating an app shows its page with the first key's secret.
	resp, page := owner.post("/console/tenants/acme/apps", url.Values{"name": {"Acme Ops"}})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create app: %d\n%s", resp.StatusCode, page)
	}
	created := f.last(t, "acme", "app.create")
	app, err := f.store.AppByID(context.Background(), created.AppID)
	if err != nil || app.Name != "Acme Ops" || created.Actor != "user:"+ownerEmail {
		t.Fatalf("created app %+v, entry %+v: %v", app, created, err)
	}
	mustContain(t, page, "Copy the secret now", app.Keys[0].Secret.Reveal(), app.Keys[0].Key)

	// A refused name keeps the form and says why.
	resp, page = owner.post("/console/tenants/acme/apps", url.Values{"name": {strings.Repeat("x", 201)}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("overlong name: %d", resp.StatusCode)
	}
	mustContain(t, page, `class="error"`, "200 characters", strings.Repeat("x", 201))

	// An empty tenant says so.
	admin := f.browser(t).signIn(adminEmail)
	_, page = admin.get("/console/tenants/initech")
	mustContain(t, page, "No apps yet.")

	// Only the platform admin suspends and activates.
	_, page = admin.get("/console/tenants/acme")
	mustContain(t, page, `action="/console/tenants/acme/suspend"`)
	resp, _ = admin.post("/console/tenants/acme/suspend", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/tenants/acme?done=suspended" {
		t.Fatalf("suspend: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if tn, _ := f.store.Tenant(context.Background(), "acme"); tn.Status != tenants.TenantSuspended {
		t.Errorf("status after suspend: %s", tn.Status)
	}
	if e := f.last(t, audit.PlatformChain, "tenant.suspend"); e.Actor != "user:"+adminEmail || e.Target != "acme" {
		t.Errorf("suspend entry: %+v", e)
	}
	_, page = admin.get("/console/tenants/acme?done=suspended")
	mustContain(t, page, "Tenant suspended", `action="/console/tenants/acme/activate"`)
}

// TestConsoleOtherTenants checks that a member of acme learns nothing of
// globex: its pages, its app (by a guessed id) and its audit log answer
// exactly like ids that do not exist.
func TestConsoleOtherTenants(t *testing.T) {
	f := newConsole(t)
	b := f.browser(t).signIn(ownerEmail)
	pairs := [][2]string{
		{"/console/tenants/globex", "/console/tenants/nosuch"},
		{"/console/apps/globex1", "/console/apps/nosuch"},
		{"/console/apps/globex1/policy", "/console/apps/nosuch/policy"},
		{"/console/apps/globex1/broadcast", "/console/apps/nosuch/broadcast"},
		{"/console/audit?tenant=globex", "/console/audit?tenant=nosuch"},
		{"/console/audit/export?tenant=globex&format=json", "/console/audit/export?tenant=nosuch&format=json"},
		{"/console/audit?tenant=platform", "/console/audit?tenant="},
	}
	for _, p := range pairs {
		s1, forbidden := b.get(p[0])
		s2, unknown := b.get(p[1])
		if s1 != http.StatusNotFound || s2 != http.StatusNotFound || forbidden != unknown {
			t.Errorf("%s: %d, %s: %d; pages equal: %t", p[0], s1, p[1], s2, forbidden == unknown)
		}
	}
	for _, path := range []string{"/console/apps/globex1/keys", "/console/apps/globex1/policy/check", "/console/tenants/globex/apps"} {
		if resp, _ := b.post(path, url.Values{"name": {"x"}, "channel": {"x"}}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: %d", path, resp.StatusCode)
		}
	}
	// The platform admin sees every tenant's pages and the platform chain.
	admin := f.browser(t).signIn(adminEmail)
	for _, path := range []string{"/console/tenants/globex", "/console/apps/globex1", "/console/apps/globex1/policy",
		"/console/apps/globex1/broadcast", "/console/audit?tenant=globex", "/console/audit?tenant=platform"} {
		if status, _ := admin.get(path); status != http.StatusOK {
			t.Errorf("admin GET %s: %d", path, status)
		}
	}
}

var secretField = regexp.MustCompile(`Secret</dt><dd><code>([0-9a-f]+)</code>`)

func TestConsoleKeys(t *testing.T) {
	f := newConsole(t)
	ctx := context.Background()
	owner := f.browser(t).signIn(ownerEmail)
	_, page := owner.get("/console/apps/acme1")
	for _, k := range f.acmeKeys {
		mustContain(t, page, "<code>"+k+"</code>", `action="/console/apps/acme1/keys/`+k+`/revoke"`)
	}

	resp, page := owner.post("/console/apps/acme1/keys", nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create key: %d\n%s", resp.StatusCode, page)
	}
	m := secretField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no secret on the page:\n%s", page)
	}
	secret := m[1]
	entry := f.last(t, "acme", "key.create")
	app, _ := f.store.AppByID(ctx, "acme1")
	if s, ok := app.SecretFor(entry.Target); !ok || s.Reveal() != secret || entry.Actor != "user:"+ownerEmail {
		t.Fatalf("the page's secret is not key %s's (entry %+v)", entry.Target, entry)
	}
	mustContain(t, page, "it will not be shown again", "<code>"+entry.Target+"</code>")
	// Shown once: the app page afterwards has only its last four.
	_, page = owner.get("/console/apps/acme1")
	if strings.Contains(page, secret) {
		t.Fatal("the app page shows the secret again")
	}
	mustContain(t, page, "…"+secret[len(secret)-4:])

	// Revoke all but one; the last active key is refused.
	for _, k := range f.acmeKeys {
		resp, _ := owner.post("/console/apps/acme1/keys/"+k+"/revoke", nil)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("revoke %s: %d", k, resp.StatusCode)
		}
	}
	if e := f.last(t, "acme", "key.revoke"); e.Target != f.acmeKeys[1] {
		t.Errorf("revoke entry: %+v", e)
	}
	resp, page = owner.post("/console/apps/acme1/keys/"+entry.Target+"/revoke", nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("revoking the last key: %d", resp.StatusCode)
	}
	mustContain(t, page, `class="error"`, "last active key")
	if keys, _ := f.store.Keys(ctx, "acme1"); keys[2].RevokedAt != nil {
		t.Error("the last key was revoked")
	}

	// An operator sees the keys but cannot touch them.
	op := f.browser(t).signIn(operatorEmail)
	_, page = op.get("/console/apps/acme1")
	if strings.Contains(page, "Create key") || strings.Contains(page, "/revoke") {
		t.Error("an operator is offered key actions")
	}
	if resp, page := op.post("/console/apps/acme1/keys", nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "creating or revoking keys") {
		t.Errorf("operator creates a key: %d\n%s", resp.StatusCode, page)
	}
}

func TestConsoleSettings(t *testing.T) {
	f := newConsole(t)
	ctx := context.Background()
	owner := f.browser(t).signIn(ownerEmail)
	_, page := owner.get("/console/apps/acme1")
	for _, spec := range tenants.LimitSpecs {
		mustContain(t, page, `name="limit_`+spec.Name+`"`)
	}
	// The free plan caps max_connections at 100, which is what the app
	// gets with the setting left at 0.
	mustContain(t, page, `value="0"`, "<td>100</td>")

	form := url.Values{"name": {"Acme Chat"}, "client_events": {"1"}, "limit_max_connections": {"500"}, "limit_max_payload_bytes": {"2048"}}
	resp, page := owner.post("/console/apps/acme1/settings", form)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("over the ceiling: %d", resp.StatusCode)
	}
	mustContain(t, page, `class="error"`, "over the free plan&#39;s ceiling of 100", `value="500"`, `value="2048"`)
	if app, _ := f.store.AppByID(ctx, "acme1"); app.Settings.Limits.MaxConnections != 0 {
		t.Error("a refused change was stored")
	}

	resp, page = owner.post("/console/apps/acme1/settings", url.Values{"name": {"Acme Chat"}, "limit_max_connections": {"ten"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("not a number: %d", resp.StatusCode)
	}
	mustContain(t, page, "Limits must be whole numbers: max_connections.", `value="ten"`)

	form.Set("limit_max_connections", "50")
	form.Del("client_events")
	form.Set("policy_authorized_private", "1")
	resp, _ = owner.post("/console/apps/acme1/settings", form)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/apps/acme1?done=settings" {
		t.Fatalf("save: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	app, _ := f.store.AppByID(ctx, "acme1")
	if l := app.Settings.Limits; l.MaxConnections != 50 || l.MaxPayloadBytes != 2048 || app.Settings.Features.ClientEventsEnabled() ||
		!app.Settings.Features.PolicyAuthorizedPrivate {
		t.Errorf("stored settings: %+v", app.Settings)
	}
	if e := f.last(t, "acme", "app.update"); e.Actor != "user:"+ownerEmail || e.AppID != "acme1" {
		t.Errorf("update entry: %+v", e)
	}
	_, page = owner.get("/console/apps/acme1?done=settings")
	mustContain(t, page, "Settings saved", `value="50"`, "<td>50</td>")

	// Disable and enable.
	if resp, _ := owner.post("/console/apps/acme1/disable", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	if app, _ := f.store.AppByID(ctx, "acme1"); app.Enabled {
		t.Error("still enabled")
	}
	_, page = owner.get("/console/apps/acme1")
	mustContain(t, page, "disabled", `action="/console/apps/acme1/enable"`)
	f.last(t, "acme", "app.disable")

	// A viewer sees the form, disabled, and cannot save it.
	viewer := f.browser(t).signIn(viewerEmail)
	_, page = viewer.get("/console/apps/acme1")
	mustContain(t, page, "<fieldset disabled>", "can see the settings but not change them")
	if resp, _ := viewer.post("/console/apps/acme1/settings", form); resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer saves settings: %d", resp.StatusCode)
	}
}

func TestConsolePolicy(t *testing.T) {
	f := newConsole(t)
	owner := f.browser(t).signIn(ownerEmail)
	_, page := owner.get("/console/apps/acme1/policy")
	mustContain(t, page, "allow * * subscribe", "(the default policy)", "herald")

	// An invalid document is refused with its line, and the text stays.
	bad := "allow * * subscribe\r\npermit * * subscribe\r\n"
	resp, page := owner.post("/console/apps/acme1/policy", url.Values{"policy": {bad}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("invalid policy: %d", resp.StatusCode)
	}
	mustContain(t, page, "Invalid policy: line 2", "permit * * subscribe", "changes that are not saved")
	if len(f.entries(t, "acme")) != 0 {
		t.Error("an invalid policy was recorded")
	}

	// A valid one (with a browser's CRLF line breaks) becomes version 1.
	doc := "deny role:banned * *\r\nallow user:ann private-ann subscribe\r\nallow * public-* *\r\n"
	resp, _ = owner.post("/console/apps/acme1/policy", url.Values{"policy": {doc}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/apps/acme1/policy?done=policy" {
		t.Fatalf("save: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	v, _ := f.manager.Policies.Store().Current(context.Background(), "acme1")
	if v.Version != 1 || v.Author != "user:"+ownerEmail || v.Document != strings.ReplaceAll(doc, "\r\n", "\n") {
		t.Fatalf("stored version: %+v", v)
	}
	if e := f.last(t, "acme", "policy.replace"); e.Target != "version 1" || e.Details["policy_sha256"] == "" {
		t.Errorf("policy entry: %+v", e)
	}
	_, page = owner.get("/console/apps/acme1/policy?done=policy")
	mustContain(t, page, "Policy saved", "user:"+ownerEmail, "allow user:ann private-ann subscribe")

	// A viewer checks the saved policy and a draft, but cannot save.
	viewer := f.browser(t).signIn(viewerEmail)
	check := url.Values{"policy": {doc}, "user_id": {"bob"}, "roles": {"staff, banned"}, "channel": {"public-news"}, "action": {"subscribe"}}
	resp, page = viewer.post("/console/apps/acme1/policy/check", check)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("check: %d\n%s", resp.StatusCode, page)
	}
	mustContain(t, page, "<strong>Deny</strong>", "the saved policy (version 1)", "line 1: <code>deny role:banned * *</code>", "denied by line 1")

	check.Set("roles", "staff")
	check.Set("policy", "deny * public-news subscribe\nallow * * *\n")
	check.Set("draft", "1")
	_, page = viewer.post("/console/apps/acme1/policy/check", check)
	mustContain(t, page, "<strong>Deny</strong>", "the draft above", "line 1: <code>deny * public-news subscribe</code>",
		"deny * public-news subscribe\nallow * * *", "changes that are not saved")
	check.Del("draft")
	_, page = viewer.post("/console/apps/acme1/policy/check", check)
	mustContain(t, page, "<strong>Allow</strong>", "line 3: <code>allow * public-* *</code>")

	check.Set("draft", "1")
	check.Set("policy", "allow * * nap\n")
	resp, page = viewer.post("/console/apps/acme1/policy/check", check)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("check of an invalid draft: %d", resp.StatusCode)
	}
	mustContain(t, page, "Invalid policy: line 1")
	check.Del("draft")
	check.Set("channel", "")
	resp, page = viewer.post("/console/apps/acme1/policy/check", check)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("check without a channel: %d", resp.StatusCode)
	}
	mustContain(t, page, "Refused: channel is required.")

	_, page = owner.get("/console/apps/acme1/policy")
	mustContain(t, page, "Save as a new version")
	_, page = viewer.get("/console/apps/acme1/policy")
	if strings.Contains(page, "Save as a new version") {
		t.Error("a viewer is offered to save")
	}
	resp, page = viewer.post("/console/apps/acme1/policy", url.Values{"policy": {"allow * * *\n"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "changing channel policies") {
		t.Errorf("viewer saves: %d\n%s", resp.StatusCode, page)
	}
}

func TestConsoleBroadcast(t *testing.T) {
	f := newConsole(t)
	f.gateway.subscriptions["acme1/news"] = 2
	f.gateway.subscriptions["acme1/alerts"] = 1
	op := f.browser(t).signIn(operatorEmail)
	status, page := op.get("/console/apps/acme1/broadcast")
	if status != http.StatusOK {
		t.Fatalf("broadcast page: %d", status)
	}
	mustContain(t, page, `name="reason"`, `<label for="payload">`)

	// Preview shows exactly what will be sent, and sends nothing.
	form := broadcastValues("preview")
	form.Set("channels", "news\r\nalerts, news")
	form.Set("payload", "{\r\n  \"at\": \"22:00\",\r\n  \"minutes\": 30\r\n}")
	resp, page := op.post("/console/apps/acme1/broadcast", form)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("preview: %d\n%s", resp.StatusCode, page)
	}
	data := `{"at":"22:00","minutes":30}`
	sum := sha256.Sum256([]byte(data))
	digest := hex.EncodeToString(sum[:])
	mustContain(t, page, "nothing is sent until you press Send", "<code>news</code>, <code>alerts</code>", "<code>maintenance</code>",
		digest, "planned maintenance", html.EscapeString("\"minutes\": 30"), `value="news,alerts"`, `value="`+html.EscapeString(data)+`"`)
	if n := len(f.gateway.sent()); n != 0 {
		t.Fatalf("preview published %d events", n)
	}

	// Send, with the preview's hidden fields.
	send := url.Values{"channels": {"news,alerts"}, "event": {"maintenance"}, "payload": {data}, "reason": {"planned maintenance"}, "step": {"send"}}
	resp, page = op.post("/console/apps/acme1/broadcast", send)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("send: %d\n%s", resp.StatusCode, page)
	}
	mustContain(t, page, "to 3 subscriptions")
	want := []published{{"acme1", "news", "maintenance", data}, {"acme1", "alerts", "maintenance", data}}
	if got := f.gateway.sent(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("published %+v, want %+v", got, want)
	}
	e := f.last(t, "acme", "broadcast.send")
	if e.Actor != "user:"+operatorEmail || e.AppID != "acme1" || e.Reason != "planned maintenance" || e.Details["payload_sha256"] != digest ||
		e.Details["reached"] != "3" || e.Details["event"] != "maintenance" || e.Details["channels"] != "news,alerts" {
		t.Errorf("broadcast entry: %+v", e)
	}

	// Refusals keep the form and say why.
	for name, change := range map[string][2]string{
		"invalid JSON":  {"payload", "{at: 22}"},
		"no reason":     {"reason", " "},
		"no channel":    {"channels", " , "},
		"bad channel":   {"channels", "bad channel!"},
		"reserved name": {"event", "pusher:subscribe"},
	} {
		bad := url.Values{}
		for k, v := range send {
			bad[k] = v
		}
		bad.Set(change[0], change[1])
		resp, page := op.post("/console/apps/acme1/broadcast", bad)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, `class="error"`) {
			t.Errorf("%s: %d\n%s", name, resp.StatusCode, page)
		}
	}
	if n := len(f.gateway.sent()); n != 2 {
		t.Errorf("refused broadcasts published: %d events", n)
	}

	// At most 10 a minute per app: the 11th is refused with the reason.
	for i := 2; i <= 10; i++ {
		if resp, page := op.post("/console/apps/acme1/broadcast", send); resp.StatusCode != http.StatusOK {
			t.Fatalf("broadcast %d: %d\n%s", i, resp.StatusCode, page)
		}
	}
	resp, page = op.post("/console/apps/acme1/broadcast", send)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("11th broadcast: %d", resp.StatusCode)
	}
	mustContain(t, page, "at most 10 operator broadcasts a minute per app", "Try again in", `value="maintenance"`)

	// A viewer may not even open the form.
	viewer := f.browser(t).signIn(viewerEmail)
	if status, page := viewer.get("/console/apps/acme1/broadcast"); status != http.StatusForbidden || !strings.Contains(page, "sending operator broadcasts") {
		t.Errorf("viewer's broadcast page: %d\n%s", status, page)
	}
	if _, page := viewer.get("/console/apps/acme1"); strings.Contains(page, "/broadcast\"") {
		t.Error("a viewer is offered the broadcast tab")
	}
}

// seedAudit appends n entries to acme's chain, one a day from
// 2026-03-01, alternating apps, actors and actions, plus one to globex's.
func seedAudit(t *testing.T, f *consoleFixture, n int) {
	t.Helper()
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		e := audit.Entry{Chain: "acme", TenantID: "acme", Time: start.AddDate(0, 0, i), Actor: "user:" + ownerEmail, ActorIP: "192.0.2.1",
			AppID: "acme1", Action: "key.create", Target: fmt.Sprintf("key%d", i+1), Details: map[string]string{"n": fmt.Sprint(i + 1)}}
		if i%2 == 1 {
			e.AppID, e.Actor, e.Action, e.Reason = "acme2", "operator", "broadcast.send", "=cmd|' /C calc'!A0"
		}
		if _, err := f.audit.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.audit.Append(ctx, audit.Entry{Chain: "globex", TenantID: "globex", Actor: "operator", Action: "key.create", Target: "globexsecretkey"}); err != nil {
		t.Fatal(err)
	}
}

var seqCell = regexp.MustCompile(`<tr>\s*<td>(\d+)</td>`)

// seqs lists the seqs of the audit page's rows.
func seqs(page string) []string {
	var out []string
	for _, m := range seqCell.FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestConsoleAuditLog(t *testing.T) {
	f := newConsole(t)
	seedAudit(t, f, 120)
	viewer := f.browser(t).signIn(viewerEmail)

	status, page := viewer.get("/console/audit?tenant=acme")
	if status != http.StatusOK {
		t.Fatalf("audit page: %d\n%s", status, page)
	}
	mustContain(t, page, "<title>Audit log · Acme · Herald console</title>")
	rows := seqs(page)
	if len(rows) != 50 || rows[0] != "120" || rows[49] != "71" {
		t.Fatalf("first page rows: %v", rows)
	}
	mustContain(t, page, "user:"+ownerEmail, "192.0.2.1", "<code>key.create</code>", "key120", "<code>n</code>: 120",
		"2026-06-28 12:00:00 UTC", `href="/console/audit?before=71&amp;tenant=acme"`)
	if strings.Contains(page, "globexsecretkey") {
		t.Error("another tenant's entry is shown")
	}
	_, page = viewer.get("/console/audit?tenant=acme&before=71")
	if rows := seqs(page); len(rows) != 50 || rows[0] != "70" || rows[49] != "21" {
		t.Errorf("second page rows: %v", rows)
	}
	mustContain(t, page, "Newest entries", "before=21")
	_, page = viewer.get("/console/audit?tenant=acme&before=21")
	if rows := seqs(page); len(rows) != 20 || rows[19] != "1" || strings.Contains(page, "Older entries") {
		t.Errorf("last page rows: %v", rows)
	}

	// Filters: app, actor and action prefix match; dates are inclusive
	// days in UTC.
	for query, want := range map[string][]string{
		"app=acme2&before=10": {"8", "6", "4", "2"},
		"actor=operator&action=broadcast.&since=2026-03-02&until=2026-03-06": {"6", "4", "2"},
		"action=key.&until=2026-03-05":                                       {"5", "3", "1"},
		"since=2026-06-28":                                                   {"120"},
		"app=nosuch":                                                         nil,
	} {
		status, page := viewer.get("/console/audit?tenant=acme&" + query)
		if got := seqs(page); status != http.StatusOK || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %d %v, want %v", query, status, got, want)
		}
		if want == nil {
			mustContain(t, page, "No entries match these filters.")
		}
	}
	_, page = viewer.get("/console/audit?tenant=acme&app=acme2")
	mustContain(t, page, `href="/console/audit?app=acme2&amp;before=22&amp;tenant=acme"`, `value="acme2"`,
		`href="/console/audit/export?app=acme2&amp;format=csv&amp;tenant=acme"`)
	status, page = viewer.get("/console/audit?tenant=acme&since=March")
	if status != http.StatusBadRequest {
		t.Errorf("bad date: %d", status)
	}
	mustContain(t, page, "must be a date", `value="March"`)

	// An empty chain.
	_, page = f.browser(t).signIn(adminEmail).get("/console/audit?tenant=initech")
	mustContain(t, page, "No entries yet.")
}

func TestConsoleAuditExport(t *testing.T) {
	f := newConsole(t)
	seedAudit(t, f, 1200) // more than one page of the log (audit.MaxLimit)
	viewer := f.browser(t).signIn(viewerEmail)

	resp, body := viewer.do(http.MethodGet, "/console/audit/export?tenant=acme&format=csv&app=acme2", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Disposition") != `attachment; filename="herald-audit-acme.csv"` ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV export: %d %v", resp.StatusCode, resp.Header)
	}
	records, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 601 || strings.Join(records[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("%d records, header %v", len(records), records[0])
	}
	first := records[1]
	if first[0] != "1200" || first[2] != "acme" || first[3] != "operator" || first[6] != "acme2" || first[7] != "broadcast.send" ||
		first[9] != "'=cmd|' /C calc'!A0" || first[10] != `{"n":"1200"}` || len(first[12]) != 64 || records[600][0] != "2" {
		t.Errorf("CSV rows: %v … %v", first, records[600])
	}

	resp, body = viewer.do(http.MethodGet, "/console/audit/export?tenant=acme&format=json&action=key.&since=2026-03-01&until=2026-03-03", nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Disposition") != `attachment; filename="herald-audit-acme.json"` {
		t.Fatalf("JSON export: %d %v", resp.StatusCode, resp.Header)
	}
	var entries []audit.Entry
	if err := json.Unmarshal([]byte(body), &entries); err != nil {
		t.Fatalf("%v:\n%s", err, body)
	}
	if len(entries) != 2 || entries[0].Seq != 3 || entries[1].Seq != 1 || entries[0].Target != "key3" || entries[0].Hash == "" {
		t.Errorf("JSON entries: %+v", entries)
	}
	_, body = viewer.do(http.MethodGet, "/console/audit/export?tenant=acme&format=json&app=nosuch", nil)
	if strings.TrimSpace(body) != "[]" {
		t.Errorf("empty JSON export: %q", body)
	}
	if resp, _ := viewer.do(http.MethodGet, "/console/audit/export?tenant=acme&format=xml", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown format: %d", resp.StatusCode)
	}
}

func TestConsoleAuditVerify(t *testing.T) {
	f := newConsole(t)
	seedAudit(t, f, 3)
	viewer := f.browser(t).signIn(viewerEmail)
	resp, page := viewer.post("/console/audit/verify", url.Values{"tenant": {"acme"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d\n%s", resp.StatusCode, page)
	}
	head := f.entries(t, "acme")[2].Hash
	mustContain(t, page, "Intact: 3 entries, head <code>"+head+"</code>.")

	// The platform chain is the admins' alone.
	if resp, _ := viewer.post("/console/audit/verify", url.Values{"tenant": {"platform"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("viewer verifies the platform chain: %d", resp.StatusCode)
	}
	admin := f.browser(t).signIn(adminEmail)
	resp, page = admin.post("/console/audit/verify", url.Values{"tenant": {"platform"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin verifies the platform chain: %d", resp.StatusCode)
	}
	mustContain(t, page, "Platform audit log", "Intact: 0 entries.")
	if _, home := admin.get("/console/"); !strings.Contains(home, `href="/console/audit?tenant=platform"`) {
		t.Errorf("the admin's home does not link the platform audit log:\n%s", home)
	}
}

// failingLog is an audit log whose List fails after ok calls.
type failingLog struct {
	*audit.MemoryLog
	ok atomic.Int32
}

func (l *failingLog) List(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	if l.ok.Add(-1) < 0 {
		return nil, errors.New("connection refused")
	}
	return l.MemoryLog.List(ctx, f)
}

// TestConsoleAuditUnavailable checks that a log that is down gets an error
// page, and that an export cut short by it cannot pass for a whole one.
func TestConsoleAuditUnavailable(t *testing.T) {
	f := newConsole(t)
	seedAudit(t, f, 1500)
	log := &failingLog{MemoryLog: f.audit}
	f.con.Audit = log
	viewer := f.browser(t).signIn(viewerEmail)
	for _, path := range []string{"/console/audit?tenant=acme", "/console/audit/export?tenant=acme&format=csv"} {
		if status, page := viewer.get(path); status != http.StatusServiceUnavailable || !strings.Contains(page, "temporarily unavailable") {
			t.Errorf("%s with the log down: %d\n%s", path, status, page)
		}
	}

	log.ok.Store(1) // the first page, then nothing
	resp, body := viewer.do(http.MethodGet, "/console/audit/export?tenant=acme&format=csv", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasSuffix(body, "EXPORT INCOMPLETE: the audit log failed part way; export again\n") {
		t.Fatalf("CSV cut short: %d, ends %q", resp.StatusCode, body[max(0, len(body)-100):])
	}
	if _, err := csv.NewReader(strings.NewReader(body)).ReadAll(); err == nil {
		t.Error("a CSV reader accepts the incomplete export")
	}
	log.ok.Store(1)
	_, body = viewer.do(http.MethodGet, "/console/audit/export?tenant=acme&format=json", nil)
	var entries []audit.Entry
	if err := json.Unmarshal([]byte(body), &entries); err == nil || !strings.HasPrefix(body, "[\n{") {
		t.Errorf("a JSON parser accepts the incomplete export (%d entries)", len(entries))
	}
}
