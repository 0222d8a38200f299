package authz

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/casbin/casbin/v2/model"
)

func TestParsePolicyErrors(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	var tooMany strings.Builder
	tooMany.WriteString("# header\n")
	for i := range maxRules + 1 {
		fmt.Fprintf(&tooMany, "allow user:%d * subscribe\n", i)
	}
	tests := []struct {
		name string
		doc  string
		line int
		msg  string // a part of the message that names the problem
	}{
		{"bad effect", "allow * * subscribe\nallw * * subscribe", 2, `unknown effect "allw": use allow, deny or role`},
		{"effect case", "Allow * * subscribe", 1, "case-sensitive"},
		{"bare name subject", "\n\nallow bob * subscribe", 3, `unknown subject "bob": use *, anon, user:<id> or role:<name>`},
		{"subject without colon", "allow user * subscribe", 1, `unknown subject "user"`},
		{"subject case", "allow User:bob * subscribe", 1, `unknown subject "User:bob"`},
		{"anon case", "allow Anon * subscribe", 1, `unknown subject "Anon"`},
		{"empty user id", "# x\nallow user: * subscribe", 2, "empty user id"},
		{"user id too long", "allow user:" + long(129) + " * subscribe", 1, "the user id is 129 bytes; the limit is 128"},
		{"user id with unicode space", "allow user:a\u00a0b * subscribe", 1, "contains whitespace"},
		{"empty role name", "allow role: * subscribe", 1, `invalid role name ""`},
		{"role name bad char", "allow role:a/b * subscribe", 1, `invalid role name "a/b"`},
		{"role name too long", "allow role:" + long(65) + " * subscribe", 1, "invalid role name"},
		{"too many fields", "allow * * subscribe extra", 1, "too many fields"},
		{"trailing comment", "allow * * subscribe # everyone", 1, "comments must be on a line of their own"},
		{"too few fields", "deny * *", 1, "too few fields"},
		{"only effect", "\tdeny\t", 1, "too few fields"},
		{"regex in glob", "allow * private-(.*) subscribe", 1, `invalid character '(' in channel pattern "private-(.*)"`},
		{"slash in glob", "allow * chat/* *", 1, `invalid character '/'`},
		{"non-ASCII in glob", "allow * privé-* *", 1, `invalid character 'é'`},
		{"glob too long", "allow * " + long(201) + " *", 1, "the channel pattern is 201 characters; the limit is 200"},
		{"unknown action", "allow * * subscribe\n\n\nallow * * publish", 4, `unknown action "publish": use subscribe, client-event or *`},
		{"action case", "allow * * Subscribe", 1, `unknown action "Subscribe"`},
		{"role too few", "role user:alice", 1, "too few fields: a role line is role <user:id or role:name> <role name>"},
		{"role too many", "role user:alice mod extra", 1, "too many fields"},
		{"role for everyone", "role * mod", 1, `only a user:<id> or role:<name> can be given a role, not "*"`},
		{"role for anon", "role anon mod", 1, `not "anon"`},
		{"role with prefix", "role user:alice role:mod", 1, `write the role name "role:mod" without the role: prefix`},
		{"role name invalid", "role user:alice mod!", 1, `invalid role name "mod!"`},
		{"role subject empty id", "role user: mod", 1, "empty user id"},
		{"role subject bad role", "role role:a,b mod", 1, `invalid role name "a,b"`},
		{"too many rules", tooMany.String(), maxRules + 2, "too many rules: the limit is 1000"},
		{"invalid UTF-8 in rule", "allow * * subscribe\nallow user:caf\xe9 * *", 2, "not valid UTF-8"},
		{"invalid UTF-8 in comment", "allow * * subscribe\n\n# caf\xe9\n", 3, "not valid UTF-8"},
		{"oversize", strings.Repeat("#", maxDocumentBytes+1), 0, "the document is 65537 bytes; the limit is 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, err := ParsePolicy(tt.doc)
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, %v; want a *PolicyError", rules, err)
			}
			if pe.Line != tt.line || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("got line %d %q, want line %d containing %q", pe.Line, pe.Msg, tt.line, tt.msg)
			}
			if rules != nil {
				t.Errorf("got rules %v with an error", rules)
			}
			if _, err := CompilePolicy("1", tt.doc, 1); !errors.As(err, &pe) {
				t.Errorf("CompilePolicy: got %v, want the parse error", err)
			}
		})
	}
}

// TestEmptyGlobRejected shows the empty glob never reaches tenants.ChannelGlob from
// a document: fields are separated by runs of blanks, so an empty channel
// is just a missing field.
func TestEmptyGlobRejected(t *testing.T) {
	_, err := ParsePolicy("allow *  subscribe")
	if err == nil || !strings.Contains(err.Error(), "too few fields") {
		t.Fatalf("got %v, want a too-few-fields error", err)
	}
}

func TestPolicyErrorString(t *testing.T) {
	_, err := ParsePolicy("allow * * subscribe\nallow * * subscribe\nallow * * publish")
	if got, want := err.Error(), `line 3: unknown action "publish": use subscribe, client-event or *`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := (&PolicyError{Msg: "too big"}).Error(), "too big"; got != want {
		t.Errorf("whole-document error: got %q, want %q", got, want)
	}
}

func TestParsePolicyAccepts(t *testing.T) {
	doc := "# comment\n" +
		"\n" +
		"   # indented comment\n" +
		"allow * #server-to-user-* subscribe\n" +
		"#server-to-user-* is a comment here, the first field\n" +
		"\tdeny \t anon  private-*\t*  \r\n" +
		"role user:alice moderator\n" +
		"role role:moderator member\n" +
		"allow role:member presence-,=@.;_* client-event\n" +
		"allow user:" + strings.Repeat("é", 64) + " x subscribe\n" +
		"allow role:" + strings.Repeat("a", 64) + " " + strings.Repeat("*", 200) + " *"
	want := []Rule{
		{Line: 4, Effect: "allow", Subject: "*", Channel: "#server-to-user-*", Action: "subscribe", Text: "allow * #server-to-user-* subscribe"},
		{Line: 6, Effect: "deny", Subject: "anon", Channel: "private-*", Action: "*", Text: "deny \t anon  private-*\t*"},
		{Line: 7, Effect: "role", Subject: "user:alice", RoleName: "moderator", Text: "role user:alice moderator"},
		{Line: 8, Effect: "role", Subject: "role:moderator", RoleName: "member", Text: "role role:moderator member"},
		{Line: 9, Effect: "allow", Subject: "role:member", Channel: "presence-,=@.;_*", Action: "client-event", Text: "allow role:member presence-,=@.;_* client-event"},
		{Line: 10, Effect: "allow", Subject: "user:" + strings.Repeat("é", 64), Channel: "x", Action: "subscribe", Text: "allow user:" + strings.Repeat("é", 64) + " x subscribe"},
		{Line: 11, Effect: "allow", Subject: "role:" + strings.Repeat("a", 64), Channel: strings.Repeat("*", 200), Action: "*", Text: "allow role:" + strings.Repeat("a", 64) + " " + strings.Repeat("*", 200) + " *"},
	}
	got, err := ParsePolicy(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rules %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("rule %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func TestParsePolicyLimits(t *testing.T) {
	var b strings.Builder
	for i := range maxRules {
		fmt.Fprintf(&b, "allow user:%d * subscribe\n", i)
	}
	rules, err := ParsePolicy(b.String())
	if err != nil || len(rules) != maxRules {
		t.Fatalf("%d rules: got %d, %v", maxRules, len(rules), err)
	}
	doc := "allow * * subscribe\n#"
	doc += strings.Repeat("x", maxDocumentBytes-len(doc))
	if rules, err := ParsePolicy(doc); err != nil || len(rules) != 1 {
		t.Fatalf("a document of exactly %d bytes: got %v, %v", len(doc), rules, err)
	}
	for _, doc := range []string{"", "\n\n", "# only comments\n  # and more\n"} {
		if rules, err := ParsePolicy(doc); err != nil || len(rules) != 0 {
			t.Errorf("%q: got %v, %v; want no rules", doc, rules, err)
		}
	}
}

// casbinMatchers are Casbin's own matching functions, in this and other
// versions. The model must not name any of them (POL-1).
var casbinMatchers = []string{
	"keyMatch", "keyMatch2", "keyMatch3", "keyMatch4", "keyMatch5",
	"keyGet", "keyGet2", "keyGet3", "regexMatch", "globMatch", "ipMatch",
	"timeMatch", "pathMatch", "eval",
}

func TestModelCallsOnlyOurFunctions(t *testing.T) {
	names := append([]string(nil), casbinMatchers...)
	builtins := model.LoadFunctionMap()
	for name := range builtins.GetFunctions() {
		names = append(names, name)
	}
	lower := strings.ToLower(policyModel)
	for _, name := range names {
		if strings.Contains(lower, strings.ToLower(name)) {
			t.Errorf("the model names Casbin's %s", name)
		}
	}

	var matcher string
	for line := range strings.Lines(policyModel) {
		if m, ok := strings.CutPrefix(line, "m = "); ok {
			matcher = m
		}
	}
	calls := regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*\(`).FindAllStringSubmatch(matcher, -1)
	seen := map[string]bool{}
	for _, c := range calls {
		if c[1] != subjectInFunc && c[1] != channelGlobFunc {
			t.Errorf("the matcher calls %s", c[1])
		}
		seen[c[1]] = true
	}
	if !seen[subjectInFunc] || !seen[channelGlobFunc] || len(seen) != 2 {
		t.Errorf("the matcher %q calls %v, want exactly %s and %s", matcher, seen, subjectInFunc, channelGlobFunc)
	}
}

const matrixDoc = `# matrix policy
allow * public-* subscribe
allow anon lobby subscribe
allow user:alice private-chat.* *
allow role:moderator presence-room-* *
allow role:staff private-encrypted-* subscribe
role role:admin staff
role user:carol moderator
role role:moderator member
allow role:member presence-members subscribe
deny user:bob public-secret *
allow * #server-to-user-* subscribe
deny anon #server-to-user-* *
`

func TestCheckMatrix(t *testing.T) {
	p, err := CompilePolicy("app-1", matrixDoc, 7)
	if err != nil {
		t.Fatal(err)
	}
	anon := Subject{}
	alice := Subject{UserID: "alice"}
	bob := Subject{UserID: "bob"}
	carol := Subject{UserID: "carol"} // moderator by a role line
	dave := Subject{UserID: "dave"}
	daveMod := Subject{UserID: "dave", Roles: []string{"moderator"}}
	daveAdmin := Subject{UserID: "dave", Roles: []string{"admin"}}
	tests := []struct {
		name     string
		s        Subject
		channel  string
		action   string
		allowed  bool
		line     int // 0: no rule
		explicit bool
	}{
		{"anon public", anon, "public-news", ActionSubscribe, true, 2, false},
		{"anon public event", anon, "public-news", ActionClientEvent, false, 0, false},
		{"user public", alice, "public-news", ActionSubscribe, true, 2, false},
		{"anon lobby", anon, "lobby", ActionSubscribe, true, 3, false},
		{"user lobby", alice, "lobby", ActionSubscribe, false, 0, false},
		{"user named anon lobby", Subject{UserID: "anon"}, "lobby", ActionSubscribe, false, 0, false},
		{"alice private", alice, "private-chat.1", ActionSubscribe, true, 4, true},
		{"alice private event", alice, "private-chat.1", ActionClientEvent, true, 4, true},
		{"alice private no dot", alice, "private-chatX", ActionSubscribe, false, 0, false},
		{"bob private", bob, "private-chat.1", ActionSubscribe, false, 0, false},
		{"anon private", anon, "private-chat.1", ActionSubscribe, false, 0, false},
		{"carol presence via role line", carol, "presence-room-1", ActionSubscribe, true, 5, true},
		{"carol presence event", carol, "presence-room-1", ActionClientEvent, true, 5, true},
		{"dave signed moderator", daveMod, "presence-room-1", ActionSubscribe, true, 5, true},
		{"dave no roles", dave, "presence-room-1", ActionSubscribe, false, 0, false},
		{"anon roles ignored", Subject{Roles: []string{"moderator"}}, "presence-room-1", ActionSubscribe, false, 0, false},
		{"carol hierarchy", carol, "presence-members", ActionSubscribe, true, 10, true},
		{"signed hierarchy", daveMod, "presence-members", ActionSubscribe, true, 10, true},
		{"hierarchy action", carol, "presence-members", ActionClientEvent, false, 0, false},
		{"admin implies staff", daveAdmin, "private-encrypted-x", ActionSubscribe, true, 6, true},
		{"staff event", daveAdmin, "private-encrypted-x", ActionClientEvent, false, 0, false},
		{"signed staff", Subject{UserID: "dave", Roles: []string{"staff"}}, "private-encrypted-x", ActionSubscribe, true, 6, true},
		{"admin not moderator", daveAdmin, "presence-room-1", ActionSubscribe, false, 0, false},
		{"bob denied", bob, "public-secret", ActionSubscribe, false, 11, false},
		{"alice not denied", alice, "public-secret", ActionSubscribe, true, 2, false},
		{"server-to-user", Subject{UserID: "1"}, "#server-to-user-1", ActionSubscribe, true, 12, false},
		{"server-to-user anon", anon, "#server-to-user-1", ActionSubscribe, false, 13, false},
		{"invalid signed roles", Subject{UserID: "dave", Roles: []string{"role:moderator", "Moderator", "moderator ", ""}}, "presence-room-1", ActionSubscribe, false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Check(tt.s, tt.channel, tt.action)
			line := 0
			if d.Rule != nil {
				line = d.Rule.Line
			}
			if d.Allowed != tt.allowed || line != tt.line || d.Explicit() != tt.explicit || d.Err() != nil {
				t.Errorf("got allowed=%t line=%d explicit=%t (%s), want allowed=%t line=%d explicit=%t",
					d.Allowed, line, d.Explicit(), d.Reason(), tt.allowed, tt.line, tt.explicit)
			}
		})
	}
}

func TestDenyOverrides(t *testing.T) {
	for _, doc := range []string{
		"deny user:bob room *\nallow user:bob room *",
		"allow user:bob room *\ndeny user:bob room *",
		"allow user:bob room subscribe\ndeny * r* subscribe",
		"deny role:banned * *\nallow * * *\nrole user:bob banned",
	} {
		p, err := CompilePolicy("1", doc, 1)
		if err != nil {
			t.Fatal(err)
		}
		d := p.Check(Subject{UserID: "bob"}, "room", ActionSubscribe)
		if d.Allowed || d.Rule == nil || d.Rule.Effect != EffectDeny {
			t.Errorf("%q: got %s, want denied by the deny line", doc, d.Reason())
		}
	}
}

func TestEmptyPolicyAllowsAll(t *testing.T) {
	for _, doc := range []string{"", "# nothing yet\n\n"} {
		p, err := CompilePolicy("1", doc, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []Subject{{}, {UserID: "u", Roles: []string{"r"}}} {
			for _, act := range []string{ActionSubscribe, ActionClientEvent} {
				d := p.Check(s, "private-anything", act)
				if !d.Allowed || d.Rule != nil || d.Explicit() {
					t.Errorf("%q %+v %s: got %+v", doc, s, act, d)
				}
				if got, want := d.Reason(), "allowed: the policy is empty (Pusher behaviour)"; got != want {
					t.Errorf("Reason() = %q, want %q", got, want)
				}
			}
		}
		if p.Version() != 3 || p.Document() != doc || len(p.Rules()) != 0 {
			t.Errorf("got version %d, document %q, rules %v", p.Version(), p.Document(), p.Rules())
		}
	}
}

func TestDefaultPolicy(t *testing.T) {
	p, err := CompilePolicy("1", DefaultPolicy, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Rules()); n != 2 {
		t.Fatalf("DefaultPolicy has %d rules, want 2", n)
	}
	for _, s := range []Subject{{}, {UserID: "anon"}, {UserID: "u", Roles: []string{"admin"}}} {
		for _, ch := range []string{"public", "private-a", "presence-a", "private-encrypted-a", "#server-to-user-u"} {
			for _, act := range []string{ActionSubscribe, ActionClientEvent} {
				if d := p.Check(s, ch, act); !d.Allowed || d.Explicit() {
					t.Errorf("%+v %s %s: %s", s, ch, act, d.Reason())
				}
			}
		}
	}
	// A tenant tightens the default by adding a deny line.
	p, err = CompilePolicy("1", DefaultPolicy+"deny anon presence-* *\n", 2)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Check(Subject{}, "presence-a", ActionSubscribe); d.Allowed || d.Rule == nil || d.Rule.Line != 4 {
		t.Errorf("added deny: %s", d.Reason())
	}
}

func TestNothingAllowsDenies(t *testing.T) {
	for _, doc := range []string{
		"allow user:alice private-* *",
		"deny anon * *",
		"role user:alice admin", // role lines are rules too
	} {
		p, err := CompilePolicy("1", doc, 1)
		if err != nil {
			t.Fatal(err)
		}
		d := p.Check(Subject{UserID: "bob"}, "public", ActionSubscribe)
		if d.Allowed || d.Rule != nil || d.Explicit() {
			t.Errorf("%q: got %+v", doc, d)
		}
		if got, want := d.Reason(), "denied: no rule allows it"; got != want {
			t.Errorf("Reason() = %q, want %q", got, want)
		}
	}
}

func TestUserNamedAnon(t *testing.T) {
	p, err := CompilePolicy("1", "allow anon * *\ndeny anon secret *\nallow user:anon mine subscribe", 1)
	if err != nil {
		t.Fatal(err)
	}
	u := Subject{UserID: "anon"}
	if d := p.Check(u, "public", ActionSubscribe); d.Allowed {
		t.Errorf("user anon got an anon rule: %s", d.Reason())
	}
	if d := p.Check(u, "mine", ActionSubscribe); !d.Allowed || d.Rule.Line != 3 || !d.Explicit() {
		t.Errorf("user anon's own rule: %s", d.Reason())
	}
	if d := p.Check(Subject{}, "mine", ActionSubscribe); d.Rule == nil || d.Rule.Line != 1 {
		t.Errorf("anonymous on mine: %s, want the anon rule", d.Reason())
	}
	if d := p.Check(Subject{}, "secret", ActionSubscribe); d.Allowed {
		t.Errorf("anonymous on secret: %s", d.Reason())
	}
}

func TestAppsAreSeparate(t *testing.T) {
	a, err := CompilePolicy("A", "allow user:1 * *", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := CompilePolicy("B", "allow user:2 * *", 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := b.Check(Subject{UserID: "1"}, "private-x", ActionSubscribe); d.Allowed {
		t.Errorf("app A's rule applied in app B: %s", d.Reason())
	}
	if d := a.Check(Subject{UserID: "1"}, "private-x", ActionSubscribe); !d.Allowed {
		t.Errorf("app A: %s", d.Reason())
	}

	// Every row carries its app as the domain, and the matcher insists on it.
	rows, err := a.enforcer.GetPolicy()
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows %v, %v", rows, err)
	}
	for _, row := range rows {
		if row[1] != "A" {
			t.Errorf("row %v does not carry domain A", row)
		}
	}
	set := &subjectSet{user: "1"}
	for dom, want := range map[string]bool{"A": true, "B": false} {
		got, err := a.enforcer.Enforce(set, dom, "private-x", ActionSubscribe)
		if err != nil || got != want {
			t.Errorf("domain %s: got %t, %v; want %t", dom, got, err, want)
		}
	}
	// Role links are per domain too.
	r, err := CompilePolicy("A", "role user:1 admin\nallow role:admin * *", 1)
	if err != nil {
		t.Fatal(err)
	}
	if roles, err := r.enforcer.GetImplicitRolesForUser("user:1", "B"); err != nil || len(roles) != 0 {
		t.Errorf("user:1's roles in domain B: %v, %v", roles, err)
	}
}

func TestDecisionRule(t *testing.T) {
	doc := `allow * a* *
allow * ab subscribe
allow * ab subscribe
deny user:x ab *
deny * ab *`
	p, err := CompilePolicy("1", doc, 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		s       Subject
		channel string
		action  string
		reason  string
	}{
		// The first matching allow, even when later lines match too.
		{Subject{}, "ax", ActionSubscribe, "allowed by line 1: allow * a* *"},
		{Subject{}, "ax", ActionClientEvent, "allowed by line 1: allow * a* *"},
		// The first matching deny, wherever the allows are.
		{Subject{UserID: "x"}, "ab", ActionSubscribe, "denied by line 4: deny user:x ab *"},
		{Subject{UserID: "y"}, "ab", ActionSubscribe, "denied by line 5: deny * ab *"},
		{Subject{}, "b", ActionSubscribe, "denied: no rule allows it"},
	}
	for _, tt := range tests {
		if got := p.Check(tt.s, tt.channel, tt.action).Reason(); got != tt.reason {
			t.Errorf("%+v %s %s: got %q, want %q", tt.s, tt.channel, tt.action, got, tt.reason)
		}
	}

	// Identical rows are held once, by their first line.
	p, err = CompilePolicy("1", "allow * ab subscribe\nallow * ab *\nrole user:a r\nrole user:a r", 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Check(Subject{}, "ab", ActionSubscribe); d.Rule == nil || d.Rule.Line != 1 {
		t.Errorf("duplicate subscribe row: %s", d.Reason())
	}
	if d := p.Check(Subject{}, "ab", ActionClientEvent); d.Rule == nil || d.Rule.Line != 2 {
		t.Errorf("client-event row: %s", d.Reason())
	}
}

func TestExplicit(t *testing.T) {
	doc := `allow * everyone *
allow anon anonymous *
allow user:u user *
allow role:r role *
deny user:u denied *`
	p, err := CompilePolicy("1", doc, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := Subject{UserID: "u", Roles: []string{"r"}}
	for channel, want := range map[string]bool{"everyone": false, "user": true, "role": true, "denied": false, "none": false} {
		if got := p.Check(s, channel, ActionSubscribe).Explicit(); got != want {
			t.Errorf("%s: Explicit() = %t, want %t", channel, got, want)
		}
	}
	if p.Check(Subject{}, "anonymous", ActionSubscribe).Explicit() {
		t.Error("an anon allow is explicit")
	}
}

// A grant naming the user or a role is reported even when an allow for
// everyone comes first in the document (as in the default policy).
func TestExplicitBehindEveryone(t *testing.T) {
	p, err := CompilePolicy("1", "allow * * subscribe\nallow role:staff private-staff-* subscribe\n", 1)
	if err != nil {
		t.Fatal(err)
	}
	d := p.Check(Subject{UserID: "carol", Roles: []string{"staff"}}, "private-staff-room", ActionSubscribe)
	if !d.Explicit() || d.Rule.Line != 2 {
		t.Errorf("decided by %s, want line 2 and explicit", d.Reason())
	}
	if d := p.Check(Subject{UserID: "dave"}, "private-staff-room", ActionSubscribe); !d.Allowed || d.Explicit() || d.Rule.Line != 1 {
		t.Errorf("dave: %s", d.Reason())
	}
}

func TestSignedRoleLimit(t *testing.T) {
	p, err := CompilePolicy("1", "allow role:mod room *", 1)
	if err != nil {
		t.Fatal(err)
	}
	roles := make([]string, maxSignedRoles+1)
	for i := range roles {
		roles[i] = fmt.Sprintf("junk%d", i)
	}
	roles[maxSignedRoles-1] = "mod"
	if d := p.Check(Subject{UserID: "u", Roles: roles}, "room", ActionSubscribe); !d.Allowed {
		t.Errorf("role number %d: %s", maxSignedRoles, d.Reason())
	}
	roles[maxSignedRoles-1], roles[maxSignedRoles] = "junk", "mod"
	if d := p.Check(Subject{UserID: "u", Roles: roles}, "room", ActionSubscribe); d.Allowed {
		t.Errorf("role number %d was considered: %s", maxSignedRoles+1, d.Reason())
	}
}

// TestSignedRolesDoNotLeak checks that combining a user's role-line roles
// with signed roles never writes into the policy's precomputed slices.
func TestSignedRolesDoNotLeak(t *testing.T) {
	doc := "role user:u a\nrole role:a b\nallow role:c room *\nallow role:d other *"
	p, err := CompilePolicy("1", doc, 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if d := p.Check(Subject{UserID: "u", Roles: []string{"c"}}, "room", ActionSubscribe); !d.Allowed {
			t.Fatalf("signed c: %s", d.Reason())
		}
		if d := p.Check(Subject{UserID: "u", Roles: []string{"d"}}, "room", ActionSubscribe); d.Allowed {
			t.Fatalf("signed d got c's rule: %s", d.Reason())
		}
		if d := p.Check(Subject{UserID: "v", Roles: []string{"a", "d"}}, "room", ActionSubscribe); d.Allowed {
			t.Fatalf("v got c's rule: %s", d.Reason())
		}
	}
}

// TestDeepRoleHierarchy checks inheritance beyond Casbin's default ten
// levels, which would otherwise silently drop the deny on the last role.
func TestDeepRoleHierarchy(t *testing.T) {
	var b strings.Builder
	b.WriteString("allow * * *\nrole user:u r0\n")
	for i := range 20 {
		fmt.Fprintf(&b, "role role:r%d r%d\n", i, i+1)
	}
	b.WriteString("deny role:r20 secret *\n")
	// A cycle must not hang the closure.
	b.WriteString("role role:r20 r0\n")
	p, err := CompilePolicy("1", b.String(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Subject{{UserID: "u"}, {UserID: "v", Roles: []string{"r0"}}} {
		if d := p.Check(s, "secret", ActionSubscribe); d.Allowed {
			t.Errorf("%+v: %s", s, d.Reason())
		}
	}
	if d := p.Check(Subject{UserID: "v"}, "secret", ActionSubscribe); !d.Allowed {
		t.Errorf("v without roles: %s", d.Reason())
	}
}

// TestCommaCollision checks rules that Casbin's own row index, which joins
// fields with commas, cannot tell apart: both must stay in force.
func TestCommaCollision(t *testing.T) {
	doc := "allow * * *\ndeny user:a,1,c d subscribe\ndeny user:a c,1,d subscribe"
	p, err := CompilePolicy("1", doc, 1)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := p.enforcer.GetPolicy()
	if err != nil || len(rows) != 4 {
		t.Fatalf("rows %v, %v; want 4", rows, err)
	}
	for _, tt := range []struct {
		user, channel string
		line          int
	}{{"a,1,c", "d", 2}, {"a", "c,1,d", 3}} {
		d := p.Check(Subject{UserID: tt.user}, tt.channel, ActionSubscribe)
		if d.Allowed || d.Rule == nil || d.Rule.Line != tt.line {
			t.Errorf("user %s on %s: %s, want denied by line %d", tt.user, tt.channel, d.Reason(), tt.line)
		}
	}
}

func TestCheckFailsClosed(t *testing.T) {
	for _, doc := range []string{"", "allow * * *"} {
		p, err := CompilePolicy("1", doc, 1)
		if err != nil {
			t.Fatal(err)
		}
		d := p.Check(Subject{}, "x", "publish")
		if d.Allowed || d.Err() == nil || !strings.HasPrefix(d.Reason(), "denied: the policy check failed: ") {
			t.Errorf("%q: unknown action: %+v %q", doc, d, d.Reason())
		}
	}
	// Casbin reports a panic with its stack; Reason keeps the first line.
	d := Decision{err: errors.New("panic: boom\ngoroutine 1 [running]:")}
	if got, want := d.Reason(), "denied: the policy check failed: panic: boom"; got != want {
		t.Errorf("Reason() = %q, want %q", got, want)
	}
	if _, err := CompilePolicy("", "allow * * *", 1); err == nil {
		t.Error("compiled a policy without an app id")
	}
}

func TestMatcherFunctionsRejectBadArguments(t *testing.T) {
	for _, fn := range []func(...interface{}) (interface{}, error){subjectInFunction, channelGlobFunction} {
		if _, err := fn("a"); err == nil {
			t.Error("one argument accepted")
		}
		if _, err := fn(1, 2); err == nil {
			t.Error("wrong types accepted")
		}
	}
}

func TestRulesIsACopy(t *testing.T) {
	p, err := CompilePolicy("1", "allow * room subscribe", 1)
	if err != nil {
		t.Fatal(err)
	}
	p.Rules()[0].Effect = EffectDeny
	if d := p.Check(Subject{}, "room", ActionSubscribe); !d.Allowed || d.Rule.Effect != EffectAllow {
		t.Errorf("changing Rules() changed the policy: %s", d.Reason())
	}
}

func TestCheckConcurrent(t *testing.T) {
	p, err := CompilePolicy("app-1", matrixDoc, 1)
	if err != nil {
		t.Fatal(err)
	}
	subjects := []Subject{{}, {UserID: "alice"}, {UserID: "bob"}, {UserID: "carol"}, {UserID: "dave", Roles: []string{"admin", "moderator"}}}
	channels := []string{"public-news", "public-secret", "lobby", "private-chat.1", "presence-room-1", "presence-members", "private-encrypted-x", "#server-to-user-1"}
	actions := []string{ActionSubscribe, ActionClientEvent}
	type query struct {
		s          Subject
		ch, action string
	}
	var queries []query
	want := map[int]string{}
	for _, s := range subjects {
		for _, ch := range channels {
			for _, act := range actions {
				want[len(queries)] = p.Check(s, ch, act).Reason()
				queries = append(queries, query{s, ch, act})
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 32 {
		wg.Go(func() {
			for i := range 200 {
				k := (g*7 + i) % len(queries)
				q := queries[k]
				if got := p.Check(q.s, q.ch, q.action).Reason(); got != want[k] {
					select {
					case errs <- fmt.Sprintf("%+v %s %s: got %q, want %q", q.s, q.ch, q.action, got, want[k]):
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add(DefaultPolicy)
	f.Add(matrixDoc)
	f.Add("")
	f.Add("allow * * publish")
	f.Add("role user:alice role:mod\n\xff")
	f.Add("deny user:a,1,c d subscribe\ndeny user:a c,1,d subscribe")
	f.Fuzz(func(t *testing.T, doc string) {
		rules, err := ParsePolicy(doc)
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) || pe.Line < 0 || pe.Line > strings.Count(doc, "\n")+1 {
				t.Fatalf("error %#v", err)
			}
			return
		}
		// Each rule's Text is enough to parse it again.
		texts := make([]string, len(rules))
		for i, r := range rules {
			texts[i] = r.Text
		}
		again, err := ParsePolicy(strings.Join(texts, "\n"))
		if err != nil || len(again) != len(rules) {
			t.Fatalf("reparsing the rules' text: %v, %v", again, err)
		}
		for i := range rules {
			again[i].Line = rules[i].Line
			if again[i] != rules[i] {
				t.Fatalf("rule %d: %+v, reparsed %+v", i, rules[i], again[i])
			}
		}

		// Stores validate documents with ParsePolicy alone, so whatever
		// it accepts must compile, for any app.
		p, err := CompilePolicy("1", doc, 1)
		if err != nil {
			t.Fatalf("an accepted document does not compile: %v", err)
		}
		for _, s := range []Subject{{}, {UserID: "u", Roles: []string{"r", "admin"}}} {
			for _, r := range rules[:min(len(rules), 10)] {
				for _, act := range []string{ActionSubscribe, ActionClientEvent} {
					if d := p.Check(s, r.Channel, act); d.Err() != nil {
						t.Fatalf("Check: %v", d.Err())
					}
				}
			}
		}
	})
}

// Checks that skip Casbin (a policy allowing an action to everyone
// everywhere) answer exactly what Casbin answers, rule included.
func TestAllowAllMatchesCasbin(t *testing.T) {
	docs := []string{
		DefaultPolicy,
		"allow * * *\n",
		"allow * * subscribe\nallow anon public-* client-event\n",
		"allow anon * subscribe\nallow * * subscribe\n",
		"allow * * subscribe\ndeny user:bob * client-event\nallow * * client-event\n",
		"allow * * subscribe\nallow role:staff private-* subscribe\nrole user:carol staff\n",
		"allow * private-* subscribe\nallow * * subscribe\n",
	}
	subjects := []Subject{{}, {UserID: "bob"}, {UserID: "carol"}, {UserID: "dave", Roles: []string{"staff"}}}
	channels := []string{"public-1", "private-1", "presence-1", "#server-to-user-bob", "x"}
	fast := 0
	for _, doc := range docs {
		p, err := CompilePolicy("1", doc, 1)
		if err != nil {
			t.Fatal(err)
		}
		fast += len(p.allowAll)
		for _, s := range subjects {
			for _, ch := range channels {
				for _, act := range []string{ActionSubscribe, ActionClientEvent} {
					got, want := p.Check(s, ch, act), p.enforce(s, ch, act)
					if got.Allowed != want.Allowed || got.Rule != want.Rule || got.Err() != nil {
						t.Errorf("%q %+v %s %s: Check %s, Casbin %s", doc, s, ch, act, got.Reason(), want.Reason())
					}
				}
			}
		}
	}
	if fast == 0 {
		t.Fatal("no document took the shortcut: the test compares nothing")
	}
}
