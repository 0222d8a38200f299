package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/tenants"
)

// routeSample is a request that succeeds on a console route of acme when
// the role allows it, and the status it then gets.
type routeSample struct {
	request func(f *consoleFixture) (path string, form url.Values)
	ok      int
}

func fixed(path string, form url.Values) func(*consoleFixture) (string, url.Values) {
	return func(*consoleFixture) (string, url.Values) { return path, form }
}

// routeSamples has a sample for every route of consoleRoutes, keyed by
// method and path pattern; TestConsoleRouteMatrix fails on a route without
// one, so a new route cannot skip the matrix.
var routeSamples = map[string]routeSample{
	"GET /tenants/:tenant":                 {fixed("/console/tenants/acme", nil), http.StatusOK},
	"GET /tenants/:tenant/usage":           {fixed("/console/tenants/acme/usage", nil), http.StatusOK},
	"POST /tenants/:tenant/apps":           {fixed("/console/tenants/acme/apps", url.Values{"name": {"Acme Ops"}}), http.StatusCreated},
	"POST /tenants/:tenant/suspend":        {fixed("/console/tenants/acme/suspend", url.Values{}), http.StatusSeeOther},
	"POST /tenants/:tenant/activate":       {fixed("/console/tenants/acme/activate", url.Values{}), http.StatusSeeOther},
	"GET /tenants/:tenant/members":         {fixed("/console/tenants/acme/members", nil), http.StatusOK},
	"POST /tenants/:tenant/members/invite": {fixed("/console/tenants/acme/members/invite", url.Values{"email": {"new@acme.test"}, "role": {"viewer"}}), http.StatusCreated},
	"POST /tenants/:tenant/members/:user/role": {func(f *consoleFixture) (string, url.Values) {
		return "/console/tenants/acme/members/" + f.userID(operatorEmail) + "/role", url.Values{"role": {"viewer"}}
	}, http.StatusSeeOther},
	"POST /tenants/:tenant/members/:user/remove": {func(f *consoleFixture) (string, url.Values) {
		return "/console/tenants/acme/members/" + f.userID(viewerEmail) + "/remove", url.Values{}
	}, http.StatusSeeOther},
	"GET /apps/:app":           {fixed("/console/apps/acme1", nil), http.StatusOK},
	"POST /apps/:app/settings": {fixed("/console/apps/acme1/settings", url.Values{"name": {"Acme Chat 2"}, "client_events": {"1"}}), http.StatusSeeOther},
	"POST /apps/:app/disable":  {fixed("/console/apps/acme1/disable", url.Values{}), http.StatusSeeOther},
	"POST /apps/:app/enable":   {fixed("/console/apps/acme1/enable", url.Values{}), http.StatusSeeOther},
	"POST /apps/:app/keys":     {fixed("/console/apps/acme1/keys", url.Values{}), http.StatusCreated},
	"POST /apps/:app/keys/:key/revoke": {func(f *consoleFixture) (string, url.Values) {
		return "/console/apps/acme1/keys/" + f.acmeKeys[0] + "/revoke", url.Values{}
	}, http.StatusSeeOther},
	"GET /apps/:app/policy":        {fixed("/console/apps/acme1/policy", nil), http.StatusOK},
	"POST /apps/:app/policy":       {fixed("/console/apps/acme1/policy", url.Values{"policy": {"deny * private-* *\nallow * * *\n"}}), http.StatusSeeOther},
	"POST /apps/:app/policy/check": {fixed("/console/apps/acme1/policy/check", url.Values{"channel": {"news"}, "action": {"subscribe"}}), http.StatusOK},
	"GET /apps/:app/broadcast":     {fixed("/console/apps/acme1/broadcast", nil), http.StatusOK},
	"POST /apps/:app/broadcast":    {fixed("/console/apps/acme1/broadcast", broadcastValues("send")), http.StatusOK},
	"GET /apps/:app/live":          {fixed("/console/apps/acme1/live", nil), http.StatusOK},
	"GET /apps/:app/live.json":     {fixed("/console/apps/acme1/live.json", nil), http.StatusOK},
	"GET /apps/:app/debug":         {fixed("/console/apps/acme1/debug", nil), http.StatusOK},
	"POST /apps/:app/debug/token":  {fixed("/console/apps/acme1/debug/token", url.Values{"socket_id": {"123.456"}}), http.StatusOK},
	"GET /audit":                   {fixed("/console/audit?tenant=acme", nil), http.StatusOK},
	"GET /audit/export":            {fixed("/console/audit/export?tenant=acme&format=csv", nil), http.StatusOK},
	"POST /audit/verify":           {fixed("/console/audit/verify", url.Values{"tenant": {"acme"}}), http.StatusOK},
}

func broadcastValues(step string) url.Values {
	return url.Values{"channels": {"news, alerts"}, "event": {"maintenance"}, "payload": {`{"at": "22:00"}`},
		"reason": {"planned maintenance"}, "step": {step}}
}

// consoleRoles are the kinds of user the matrix tries: acme's three
// roles, the owner of another tenant, and a platform admin.
var consoleRoles = []struct {
	email string
	role  tenants.Role // "" for the outsider and the admin
	admin bool
}{
	{viewerEmail, tenants.RoleViewer, false},
	{operatorEmail, tenants.RoleOperator, false},
	{ownerEmail, tenants.RoleOwner, false},
	{outsiderEmail, "", false},
	{adminEmail, "", true},
}

// TestConsoleRouteMatrix tries every console route as every kind of user.
// The expected status comes from the documented role→permission table
// (authz.RolePermissions), not from the code under test: 404 where the
// user may not view the tenant, 403 where the role lacks the route's
// permission, the sample's success status otherwise.
func TestConsoleRouteMatrix(t *testing.T) {
	roles := authz.RolePermissions()
	for _, rt := range consoleRoutes {
		sample, ok := routeSamples[rt.method+" "+rt.path]
		if !ok {
			t.Errorf("no sample request for %s %s: add one to routeSamples", rt.method, rt.path)
			continue
		}
		for _, who := range consoleRoles {
			want := sample.ok
			switch {
			case who.admin:
			case who.role == "":
				want = http.StatusNotFound
			case !slices.Contains(roles[who.role], rt.perm):
				want = http.StatusForbidden
			}
			t.Run(rt.method+" "+rt.path+" as "+who.email, func(t *testing.T) {
				f := newConsole(t)
				b := f.browser(t).signIn(who.email)
				path, form := sample.request(f)
				var resp *http.Response
				var page string
				if rt.method == fiber.MethodGet {
					resp, page = b.do(rt.method, path, nil)
				} else {
					resp, page = b.post(path, form)
				}
				if resp.StatusCode != want {
					t.Fatalf("status %d, want %d\n%s", resp.StatusCode, want, page)
				}
				switch want {
				case http.StatusNotFound:
					if strings.Contains(page, "Acme") || strings.Contains(page, "acme1") {
						t.Errorf("the 404 names the tenant or app:\n%s", page)
					}
				case http.StatusForbidden:
					if !strings.Contains(page, "does not allow") {
						t.Errorf("the 403 does not say what is not allowed:\n%s", page)
					}
				}
			})
		}
	}
}

// TestConsoleCSRF posts to every state-changing route without the
// session's token, and with a wrong one, as the platform admin, who may
// do everything: each is refused before anything changes.
func TestConsoleCSRF(t *testing.T) {
	f := newConsole(t)
	b := f.browser(t).signIn(adminEmail)
	before, _ := f.audit.Chains(t.Context())
	for _, rt := range consoleRoutes {
		if rt.method == fiber.MethodGet {
			continue
		}
		path, form := routeSamples[rt.method+" "+rt.path].request(f)
		for name, token := range map[string]string{"missing": "", "wrong": wrongToken(b.token)} {
			sent := url.Values{}
			for k, v := range form {
				sent[k] = v
			}
			if token != "" {
				sent.Set("csrf", token)
			}
			resp, page := b.do(http.MethodPost, path, sent)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "did not come from this site") {
				t.Errorf("%s %s with the token %s: %d\n%s", rt.method, path, name, resp.StatusCode, page)
			}
		}
	}
	if after, _ := f.audit.Chains(t.Context()); !slices.Equal(before, after) || len(f.gateway.sent()) != 0 {
		t.Errorf("a refused form changed something: chains %v → %v, %d publishes", before, after, len(f.gateway.sent()))
	}
}
