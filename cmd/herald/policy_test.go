package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/pgtest"
)

const opToken = "op-token-for-policy-tests"

// policyNode starts a node with apps A and B and the management API on.
func policyNode(t *testing.T, extraA string) (*Main, cred, cred) {
	t.Helper()
	a := cred{ID: "101", Key: "keyA", Secret: "secretA"}
	b := cred{ID: "102", Key: "keyB", Secret: "secretB"}
	cfg := testConfig(appsJSON(appJSON(a, extraA, ""), appJSON(b, "", "")))
	cfg.AdminToken = opToken
	return startMain(t, cfg), a, b
}

func putPolicy(t *testing.T, m *Main, appID, doc string) restResponse {
	t.Helper()
	return operatorRequest(t, m.Addr, opToken, http.MethodPut, "/v1/apps/"+appID+"/policy", map[string]string{"policy": doc})
}

func mustPutPolicy(t *testing.T, m *Main, appID, doc string) {
	t.Helper()
	if r := putPolicy(t, m, appID, doc); r.Status != http.StatusOK {
		t.Fatalf("PUT policy: %d %s", r.Status, r.Body)
	}
}

// signedIn connects to app c and signs in as user with user_info info.
func signedIn(t *testing.T, m *Main, c cred, user, info string) *wsConn {
	t.Helper()
	w := dial(t, m.Addr, c.Key)
	ud := `{"id":"` + user + `"`
	if info != "" {
		ud += `,"user_info":` + info
	}
	ud += "}"
	w.signin(c.Key+":"+hmacHex(c.Secret, w.SocketID+"::user::"+ud), ud)
	return w
}

// The management API reads, validates, versions and checks policies.
func TestPolicyManagementAPI(t *testing.T) {
	m, a, _ := policyNode(t, "")
	get := operatorRequest(t, m.Addr, opToken, http.MethodGet, "/v1/apps/"+a.ID+"/policy", nil)
	var cur struct {
		Version int64  `json:"version"`
		Policy  string `json:"policy"`
		Author  string `json:"author"`
	}
	if get.Status != http.StatusOK || json.Unmarshal(get.Body, &cur) != nil || cur.Version != 0 || !strings.Contains(cur.Policy, "allow * * subscribe") {
		t.Fatalf("default policy: %d %s", get.Status, get.Body)
	}

	for _, tt := range []struct{ doc, want string }{
		{"allow * * subscribe\nallow * * publish\n", "line 2"},
		{"allow * * subscribe\n\n# fine\npermit * * subscribe", "line 4"},
		{"allow user: * subscribe", "line 1"},
		{"allow * private-[a] subscribe", "line 1"},
	} {
		r := putPolicy(t, m, a.ID, tt.doc)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.errorMessage(t), tt.want) {
			t.Errorf("PUT %q: %d %s, want 400 naming %s", tt.doc, r.Status, r.Body, tt.want)
		}
	}
	if r := operatorRequest(t, m.Addr, opToken, http.MethodPut, "/v1/apps/"+a.ID+"/policy", map[string]any{"policy": 5}); r.Status != http.StatusBadRequest {
		t.Errorf("policy as a number: %d", r.Status)
	}
	if r := operatorRequest(t, m.Addr, opToken, http.MethodPut, "/v1/apps/nope/policy", map[string]string{"policy": ""}); r.Status != http.StatusNotFound {
		t.Errorf("policy of an unknown app: %d", r.Status)
	}
	// Nothing invalid was applied.
	if r := operatorRequest(t, m.Addr, opToken, http.MethodGet, "/v1/apps/"+a.ID+"/policy", nil); json.Unmarshal(r.Body, &cur) != nil || cur.Version != 0 {
		t.Fatalf("a refused policy changed the version: %s", r.Body)
	}

	doc := "allow * * subscribe\ndeny user:bob private-* *\nrole user:carol staff\nallow role:staff private-staff-* client-event\n"
	mustPutPolicy(t, m, a.ID, doc)
	r := operatorRequest(t, m.Addr, opToken, http.MethodGet, "/v1/apps/"+a.ID+"/policy", nil)
	if json.Unmarshal(r.Body, &cur) != nil || cur.Version != 1 || cur.Policy != doc || cur.Author != "operator" {
		t.Fatalf("after PUT: %s", r.Body)
	}
	mustPutPolicy(t, m, a.ID, doc+"deny anon presence-* subscribe\n")
	var versions struct {
		Versions []struct {
			Version int64  `json:"version"`
			Author  string `json:"author"`
		} `json:"versions"`
	}
	r = operatorRequest(t, m.Addr, opToken, http.MethodGet, "/v1/apps/"+a.ID+"/policy/versions", nil)
	if json.Unmarshal(r.Body, &versions) != nil || len(versions.Versions) != 2 || versions.Versions[0].Version != 2 {
		t.Fatalf("versions: %s", r.Body)
	}

	check := func(body map[string]any) (bool, int, string) {
		t.Helper()
		r := operatorRequest(t, m.Addr, opToken, http.MethodPost, "/v1/apps/"+a.ID+"/policy/check", body)
		var d struct {
			Allowed bool `json:"allowed"`
			Rule    *struct {
				Line int `json:"line"`
			} `json:"rule"`
			Reason string `json:"reason"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &d) != nil {
			t.Fatalf("check %v: %d %s", body, r.Status, r.Body)
		}
		line := 0
		if d.Rule != nil {
			line = d.Rule.Line
		}
		return d.Allowed, line, d.Reason
	}
	if ok, line, _ := check(map[string]any{"user_id": "bob", "channel": "private-x", "action": "subscribe"}); ok || line != 2 {
		t.Errorf("bob on private-x: allowed=%v by line %d, want denied by line 2", ok, line)
	}
	if ok, line, _ := check(map[string]any{"user_id": "carol", "channel": "private-staff-1", "action": "client-event"}); !ok || line != 4 {
		t.Errorf("carol client event: allowed=%v by line %d, want allowed by line 4", ok, line)
	}
	if ok, _, _ := check(map[string]any{"user_id": "dave", "roles": []string{"staff"}, "channel": "private-staff-1", "action": "client-event"}); !ok {
		t.Error("a signed role was not honoured")
	}
	if ok, _, reason := check(map[string]any{"user_id": "", "channel": "presence-room", "action": "subscribe"}); ok || reason == "" {
		t.Errorf("anonymous on presence-room: allowed=%v (%s)", ok, reason)
	}
	if ok, line, _ := check(map[string]any{"user_id": "bob", "channel": "private-x", "action": "subscribe", "policy": "allow * * *"}); !ok || line != 1 {
		t.Errorf("a draft policy was not the one checked: allowed=%v line %d", ok, line)
	}
	for _, bad := range []map[string]any{
		{"user_id": "bob", "channel": "private-x", "action": "publish"},
		{"user_id": "bob", "action": "subscribe"},
		{"user_id": "bob", "channel": "x", "action": "subscribe", "policy": "allow"},
		{"user_id": "bob", "channel": "x", "action": "subscribe", "subject": "u:1"},
	} {
		if r := operatorRequest(t, m.Addr, opToken, http.MethodPost, "/v1/apps/"+a.ID+"/policy/check", bad); r.Status != http.StatusBadRequest {
			t.Errorf("check %v: %d %s, want 400", bad, r.Status, r.Body)
		}
	}
}

// A valid signature proves the tenant's backend approved a subscription;
// the policy can still deny it, and the policy of app A never applies to
// app B (POL-2, POL-3).
func TestPolicyDeniesSignedSubscriptions(t *testing.T) {
	m, a, b := policyNode(t, "")
	mustPutPolicy(t, m, a.ID, "allow * * *\ndeny user:bob private-* subscribe\ndeny user:mallory presence-* subscribe\n")

	bob := signedIn(t, m, a, "bob", "")
	e := bob.subscribeRefused("private-x", handChannelToken(a, bob.SocketID, "private-x", ""), "")
	if e.Status != 403 || !strings.Contains(e.Error, "policy") {
		t.Errorf("bob on private-x: %+v", e)
	}
	bob.subscribeOK("public-x", "", "")

	alice := signedIn(t, m, a, "alice", "")
	alice.subscribeOK("private-x", handChannelToken(a, alice.SocketID, "private-x", ""), "")

	// Presence subjects come from the signed channel_data, and an
	// unsigned connection is anonymous.
	anon := dial(t, m.Addr, a.Key)
	anon.subscribeOK("private-x", handChannelToken(a, anon.SocketID, "private-x", ""), "")
	cd := `{"user_id":"mallory"}`
	if e := anon.subscribeRefused("presence-room", handChannelToken(a, anon.SocketID, "presence-room", cd), cd); e.Status != 403 {
		t.Errorf("mallory on presence-room: %+v", e)
	}
	cd = `{"user_id":"bob"}`
	anon.subscribeOK("presence-room", handChannelToken(a, anon.SocketID, "presence-room", cd), cd)

	// App B has the default policy: bob is welcome there.
	bobB := signedIn(t, m, b, "bob", "")
	bobB.subscribeOK("private-x", handChannelToken(b, bobB.SocketID, "private-x", ""), "")
}

// A policy change ends the open subscriptions it denies: the subscriber
// gets a pusher:subscription_error naming the channel and stops receiving
// the channel's events; other subscriptions are untouched.
func TestPolicyChangeEndsDeniedSubscriptions(t *testing.T) {
	m, a, _ := policyNode(t, "")
	bob := signedIn(t, m, a, "bob", `{"roles":["guest"]}`)
	alice := signedIn(t, m, a, "alice", "")
	for _, w := range []*wsConn{bob, alice} {
		w.subscribeOK("private-room", handChannelToken(a, w.SocketID, "private-room", ""), "")
		w.subscribeOK("news", "", "")
	}
	mustPutPolicy(t, m, a.ID, "allow * * *\ndeny role:guest private-* *\n")

	f := bob.expect("the policy notice", func(f frame) bool {
		return f.Event == "pusher:subscription_error" && f.Channel == "private-room"
	})
	var e subscriptionError
	f.decodeData(t, &e)
	if e.Status != 403 || !strings.Contains(e.Error, "private-room") {
		t.Errorf("notice: %s", f.raw)
	}
	publish(t, m.Addr, a, "private-room", "after", `"x"`, "")
	publish(t, m.Addr, a, "news", "after", `"x"`, "")
	alice.expectEvent("after", "private-room")
	frames := bob.until("after", "news")
	noneOf(t, frames, "an event on the ended subscription", isEvent("after", "private-room"))
	if got := channelInfo(t, m.Addr, a, "private-room", "subscription_count")["subscription_count"]; got != float64(1) {
		t.Errorf("private-room has %v subscriptions after the change, want 1", got)
	}
}

// Client events go through the policy's client-event action.
func TestPolicyDeniesClientEvents(t *testing.T) {
	m, a, _ := policyNode(t, "")
	mustPutPolicy(t, m, a.ID, "allow * * subscribe\nallow role:speaker private-stage client-event\n")
	speaker := signedIn(t, m, a, "s1", `{"roles":["speaker"]}`)
	listener := signedIn(t, m, a, "l1", "")
	for _, w := range []*wsConn{speaker, listener} {
		w.subscribeOK("private-stage", handChannelToken(a, w.SocketID, "private-stage", ""), "")
	}
	listener.clientEvent("private-stage", "client-heckle", map[string]string{})
	if e := listener.expectError(); !strings.Contains(e.Message, "policy") {
		t.Errorf("denied client event: %+v", e)
	}
	speaker.clientEvent("private-stage", "client-speech", map[string]string{"text": "hi"})
	listener.expectEvent("client-speech", "private-stage")
}

// With policy_authorized_private on, a signed-in user subscribes to a
// private channel without a token when a rule names the user or a role;
// a rule for everyone is not enough, and an anonymous connection still
// needs a token (POL-2).
func TestPolicyAuthorizedPrivateChannels(t *testing.T) {
	m, a, b := policyNode(t, `"settings":{"features":{"policy_authorized_private":true}}`)
	mustPutPolicy(t, m, a.ID, "allow * * subscribe\nallow role:staff private-staff-* subscribe\nallow user:dave private-dave subscribe\n")

	staff := signedIn(t, m, a, "carol", `{"roles":["staff"]}`)
	staff.subscribeOK("private-staff-room", "", "")
	dave := signedIn(t, m, a, "dave", "")
	dave.subscribeOK("private-dave", "", "")
	if e := dave.subscribeRefused("private-staff-room", "", ""); e.Status != 401 {
		t.Errorf("dave without the role: %+v", e)
	}
	if e := dave.subscribeRefused("private-other", "", ""); e.Status != 401 {
		t.Errorf("a channel only the allow-everyone rule covers: %+v", e)
	}
	anon := dial(t, m.Addr, a.Key)
	if e := anon.subscribeRefused("private-staff-room", "", ""); e.Status != 401 {
		t.Errorf("anonymous without a token: %+v", e)
	}
	if e := dave.subscribeRefused("private-encrypted-dave", "", ""); e.Status != 401 {
		t.Errorf("encrypted channels always need a token: %+v", e)
	}
	// The feature is per app: B has it off.
	bDave := signedIn(t, m, b, "dave", "")
	if e := bDave.subscribeRefused("private-dave", "", ""); e.Status != 401 {
		t.Errorf("app B without the feature: %+v", e)
	}
	// Withdrawing the rule ends the subscription it granted.
	mustPutPolicy(t, m, a.ID, "allow * * subscribe\nallow role:staff private-staff-* subscribe\n")
	dave.expect("the policy notice", isEvent("pusher:subscription_error", "private-dave"))
}

// Policies given in HERALD_APPS are checked before anything is stored; an
// error names the app and the line.
func TestPolicyInAppsConfig(t *testing.T) {
	a := cred{ID: "101", Key: "keyA", Secret: "secretA"}
	bad := testConfig(appsJSON(appJSON(a, `"policy":"allow * * subscribe\nallow * *"`, "")))
	mb := &Main{Config: bad}
	err := mb.Run(t.Context())
	_ = mb.Close()
	if err == nil || !strings.Contains(err.Error(), "app 101") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad policy in HERALD_APPS: %v", err)
	}
	cfg := testConfig(appsJSON(appJSON(a, `"policy":"allow * * *\ndeny user:bob * *"`, "")))
	cfg.AdminToken = opToken
	m := startMain(t, cfg)
	bob := signedIn(t, m, a, "bob", "")
	bob.subscribeRefused("news", "", "")
	r := operatorRequest(t, m.Addr, opToken, http.MethodGet, "/v1/apps/"+a.ID+"/policy", nil)
	if !strings.Contains(string(r.Body), `"author":"config"`) {
		t.Errorf("policy from config: %s", r.Body)
	}
}

// A policy changed through one node ends the denied subscriptions held by
// the other node (two nodes sharing Redis and PostgreSQL), well within the
// wait; the time it took is logged.
func TestPolicyChangeReachesEveryNode(t *testing.T) {
	a := cred{ID: "103", Key: "keyA", Secret: "secretA"}
	db := pgtest.SchemaURL(t)
	n1, n2 := twoRedisNodes(t, appsJSON(appJSON(a, "", "")), func(c *Config) {
		c.AdminToken = opToken
		c.DatabaseURL, c.Migrate = db, true
		c.MasterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	})
	bob := signedIn(t, n2, a, "bob", "")
	bob.subscribeOK("private-x", handChannelToken(a, bob.SocketID, "private-x", ""), "")
	start := time.Now()
	mustPutPolicy(t, n1, a.ID, "allow * * *\ndeny user:bob private-* *\n")
	bob.expect("the policy notice on the other node", isEvent("pusher:subscription_error", "private-x"))
	t.Logf("policy change to notice on the other node: %v", time.Since(start))
	if e := bob.subscribeRefused("private-y", handChannelToken(a, bob.SocketID, "private-y", ""), ""); e.Status != 403 {
		t.Errorf("a new subscription on the other node: %+v", e)
	}
}
