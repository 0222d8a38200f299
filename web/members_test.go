package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/tenants"
)

// userID returns the id of the fixture's user with email.
func (f *consoleFixture) userID(email string) string {
	u, err := f.users.UserByEmail(context.Background(), email)
	if err != nil {
		panic(err)
	}
	return u.ID
}

var inviteLink = regexp.MustCompile(`<code id="invite-link">https?://[^/<]+(/console/join/[0-9a-f]{64})</code>`)

// invite has acme's owner invite email with role and returns the link's
// path.
func invite(t *testing.T, f *consoleFixture, email, role string) string {
	t.Helper()
	owner := f.browser(t).signIn(ownerEmail)
	resp, page := owner.post("/console/tenants/acme/members/invite", url.Values{"email": {email}, "role": {role}})
	m := inviteLink.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusCreated || m == nil {
		t.Fatalf("invite: %d\n%s", resp.StatusCode, page)
	}
	// The link is shown once: the members page lists the invite without it.
	if _, again := owner.get("/console/tenants/acme/members"); strings.Contains(again, m[1]) || !strings.Contains(again, email) {
		t.Errorf("members page after the invite:\n%s", again)
	}
	return m[1]
}

func TestConsoleInviteAndJoin(t *testing.T) {
	f := newConsole(t)
	f.now = time.Now() // invites expire by the Manager's clock, the wall clock
	path := invite(t, f, "new@acme.test", "operator")

	b := f.browser(t)
	status, page := b.get(path)
	if status != http.StatusOK || !strings.Contains(page, "Acme") || !strings.Contains(page, "operator") || !strings.Contains(page, "Choose a password") {
		t.Fatalf("join page: %d\n%s", status, page)
	}
	csrf := b.csrf(page)
	// Too short a password: refused, and the invite still works.
	if resp, page := b.do(http.MethodPost, path, url.Values{"csrf": {csrf}, "password": {"short"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "at least 10") {
		t.Fatalf("short password: %d\n%s", resp.StatusCode, page)
	}
	_, page = b.get(path)
	resp, _ := b.do(http.MethodPost, path, url.Values{"csrf": {b.csrf(page)}, "password": {"a long new password"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/tenants/acme" {
		t.Fatalf("join: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Signed in, with the role.
	if status, page := b.get("/console/tenants/acme"); status != http.StatusOK || !strings.Contains(page, "new@acme.test") {
		t.Fatalf("tenant page after joining: %d\n%s", status, page)
	}
	u, err := f.users.UserByEmail(t.Context(), "new@acme.test")
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := f.users.Memberships(t.Context(), u.ID)
	if len(ms) != 1 || ms[0].TenantID != "acme" || ms[0].Role != tenants.RoleOperator {
		t.Errorf("memberships after joining: %+v", ms)
	}
	var actions []string
	_ = f.audit.Walk(t.Context(), "acme", func(e audit.Entry) error {
		actions = append(actions, e.Action+" "+e.Actor+" "+e.Target)
		return nil
	})
	joined := strings.Join(actions, "\n")
	if !strings.Contains(joined, "member.invite user:owner@acme.test new@acme.test") || !strings.Contains(joined, "member.join user:new@acme.test "+u.ID) {
		t.Errorf("audit of acme:\n%s", joined)
	}

	// Used: the link no longer works.
	other := f.browser(t)
	if status, page := other.get(path); status != http.StatusNotFound || !strings.Contains(page, "not valid") {
		t.Errorf("used invite: %d\n%s", status, page)
	}
}

func TestConsoleJoinExistingAccountAndExpiry(t *testing.T) {
	f := newConsole(t)
	f.now = time.Now() // invites expire by the Manager's clock, the wall clock
	// An existing account must prove it is theirs.
	path := invite(t, f, outsiderEmail, "viewer")
	b := f.browser(t)
	_, page := b.get(path)
	if !strings.Contains(page, "existing account") {
		t.Fatalf("join page for an existing account:\n%s", page)
	}
	if resp, _ := b.do(http.MethodPost, path, url.Values{"csrf": {b.csrf(page)}, "password": {"not the password"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("wrong password: %d", resp.StatusCode)
	}
	_, page = b.get(path)
	if resp, _ := b.do(http.MethodPost, path, url.Values{"csrf": {b.csrf(page)}, "password": {testPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("join with an existing account: %d", resp.StatusCode)
	}
	ms, _ := f.users.Memberships(t.Context(), f.userID(outsiderEmail))
	if len(ms) != 2 {
		t.Errorf("memberships: %+v", ms)
	}

	// Expired after 7 days.
	path = invite(t, f, "late@acme.test", "viewer")
	f.now = time.Now().Add(8 * 24 * time.Hour)
	if status, _ := f.browser(t).get(path); status != http.StatusNotFound {
		t.Errorf("expired invite: %d", status)
	}
	f.now = time.Now()
	b = f.browser(t)
	_, page = b.get(path)
	csrf := b.csrf(page)
	f.now = time.Now().Add(8 * 24 * time.Hour)
	if resp, _ := b.do(http.MethodPost, path, url.Values{"csrf": {csrf}, "password": {"a long new password"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("expired invite accepted: %d", resp.StatusCode)
	}
	if _, err := f.users.UserByEmail(t.Context(), "late@acme.test"); err == nil {
		t.Error("an expired invite created an account")
	}
}

func TestConsoleJoinCSRF(t *testing.T) {
	f := newConsole(t)
	f.now = time.Now() // invites expire by the Manager's clock, the wall clock
	path := invite(t, f, "new@acme.test", "viewer")
	b := f.browser(t)
	_, page := b.get(path)
	for name, token := range map[string]string{"missing": "", "wrong": wrongToken(b.csrf(page))} {
		form := url.Values{"password": {"a long new password"}}
		if token != "" {
			form.Set("csrf", token)
		}
		if resp, _ := b.do(http.MethodPost, path, form); resp.StatusCode != http.StatusForbidden {
			t.Errorf("join with the token %s: %d", name, resp.StatusCode)
		}
	}
	if _, err := f.users.UserByEmail(t.Context(), "new@acme.test"); err == nil {
		t.Error("a refused join created an account")
	}
}

func TestConsoleMembersAccess(t *testing.T) {
	f := newConsole(t)
	f.now = time.Now() // invites expire by the Manager's clock, the wall clock
	viewer := f.browser(t).signIn(viewerEmail)
	if resp, _ := viewer.post("/console/tenants/acme/members/invite", url.Values{"email": {"x@acme.test"}, "role": {"owner"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("viewer invites: %d", resp.StatusCode)
	}
	if status, page := viewer.get("/console/tenants/acme/members"); status != http.StatusOK || strings.Contains(page, "Invite a member") || !strings.Contains(page, ownerEmail) {
		t.Errorf("viewer's members page: %d\n%s", status, page)
	}
	outsider := f.browser(t).signIn(outsiderEmail)
	if status, page := outsider.get("/console/tenants/acme/members"); status != http.StatusNotFound || strings.Contains(page, ownerEmail) {
		t.Errorf("another tenant's owner: %d\n%s", status, page)
	}

	// The last owner can be neither removed nor demoted.
	owner := f.browser(t).signIn(ownerEmail)
	ownerID := f.userID(ownerEmail)
	for _, action := range []struct {
		path string
		form url.Values
	}{{"/remove", url.Values{}}, {"/role", url.Values{"role": {"viewer"}}}} {
		resp, page := owner.post("/console/tenants/acme/members/"+ownerID+action.path, action.form)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(page, "last owner") {
			t.Errorf("%s of the last owner: %d\n%s", action.path, resp.StatusCode, page)
		}
	}
	// After another member is made owner, the first may leave.
	if resp, _ := owner.post("/console/tenants/acme/members/"+f.userID(operatorEmail)+"/role", url.Values{"role": {"owner"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("promote: %d", resp.StatusCode)
	}
	if resp, _ := owner.post("/console/tenants/acme/members/"+ownerID+"/remove", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("remove a second owner: %d", resp.StatusCode)
	}
	if status, _ := owner.get("/console/tenants/acme"); status != http.StatusNotFound {
		t.Errorf("removed owner still sees acme: %d", status)
	}
}

func TestConsoleSignUp(t *testing.T) {
	form := func(b *browser, page string) url.Values {
		return url.Values{"csrf": {b.csrf(page)}, "email": {"Founder@New.test"}, "password": {"a long new password"}, "tenant": {"New Co"}}
	}
	// Off (the default): no such page.
	f := newConsole(t)
	f.now = time.Now() // invites expire by the Manager's clock, the wall clock
	b := f.browser(t)
	if status, _ := b.get("/console/signup"); status != http.StatusNotFound {
		t.Errorf("sign-up off: GET %d", status)
	}
	if resp, _ := b.do(http.MethodPost, "/console/signup", url.Values{}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("sign-up off: POST %d", resp.StatusCode)
	}
	if _, page := b.get("/console/login"); strings.Contains(page, "/console/signup") {
		t.Error("the login page links to sign-up when it is off")
	}

	// Invite only: refused, with a message.
	f.con.SignUp = SignUpInvite
	status, page := b.get("/console/signup")
	if status != http.StatusOK || !strings.Contains(page, "invite links") || strings.Contains(page, `action="/console/signup"`) {
		t.Errorf("invite-only sign-up page: %d\n%s", status, page)
	}
	if resp, page := b.do(http.MethodPost, "/console/signup", url.Values{"email": {"x@new.test"}}); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "invite links") {
		t.Errorf("invite-only sign-up: %d\n%s", resp.StatusCode, page)
	}

	// Open.
	f.con.SignUp = SignUpOpen
	if _, page := b.get("/console/login"); !strings.Contains(page, "/console/signup") {
		t.Error("the login page does not link to sign-up")
	}
	_, page = b.get("/console/signup")
	// Without the CSRF token: refused.
	bad := form(b, page)
	bad.Del("csrf")
	if resp, _ := b.do(http.MethodPost, "/console/signup", bad); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sign-up without CSRF: %d", resp.StatusCode)
	}
	resp, page := b.do(http.MethodPost, "/console/signup", form(b, page))
	if resp.StatusCode != http.StatusCreated || !strings.Contains(page, "New Co") || !strings.Contains(page, "Secret") {
		t.Fatalf("sign-up: %d\n%s", resp.StatusCode, page)
	}
	u, err := f.users.UserByEmail(t.Context(), "founder@new.test")
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := f.users.Memberships(t.Context(), u.ID)
	if len(ms) != 1 || ms[0].Role != tenants.RoleOwner {
		t.Fatalf("memberships: %+v", ms)
	}
	apps, _ := f.store.Apps(t.Context(), ms[0].TenantID)
	tn, _ := f.store.Tenant(t.Context(), ms[0].TenantID)
	if len(apps) != 1 || tn.Plan != "free" || !strings.Contains(page, apps[0].Keys[0].Key) || !strings.Contains(page, apps[0].Keys[0].Secret.Reveal()) {
		t.Errorf("tenant %+v apps %+v", tn, apps)
	}
	// Signed in as the new owner.
	if status, page := b.get("/console/tenants/" + tn.ID); status != http.StatusOK || !strings.Contains(page, "owner") {
		t.Errorf("new tenant page: %d\n%s", status, page)
	}
	// The same email again: refused.
	b2 := f.browser(t)
	_, page = b2.get("/console/signup")
	if resp, _ := b2.do(http.MethodPost, "/console/signup", form(b2, page)); resp.StatusCode != http.StatusConflict {
		t.Errorf("second sign-up with the same email: %d", resp.StatusCode)
	}
	// Rate limit: 5 an hour per IP (one used above, one refused).
	for i := range 4 {
		_, page = b2.get("/console/signup")
		fm := form(b2, page)
		fm.Set("email", "x"+string(rune('a'+i))+"@new.test")
		b2.do(http.MethodPost, "/console/signup", fm)
	}
	_, page = b2.get("/console/signup")
	fm := form(b2, page)
	fm.Set("email", "late@new.test")
	if resp, _ := b2.do(http.MethodPost, "/console/signup", fm); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("6th sign-up in an hour: %d", resp.StatusCode)
	}
}
