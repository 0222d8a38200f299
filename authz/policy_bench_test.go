package authz

import "testing"

// realisticPolicy is 20 rules of the kind a tenant writes: public and
// server-to-user channels for everyone, private and presence channels by
// user and role, a role hierarchy and a few denies.
const realisticPolicy = `# chat app
allow * public-* subscribe
allow * #server-to-user-* subscribe
deny anon private-* *
deny anon presence-* *
allow role:member private-chat.* *
allow role:member presence-lobby subscribe
allow role:moderator presence-* *
allow role:moderator private-mod-* *
allow role:admin * *
allow role:support private-ticket-* *
allow user:42 private-encrypted-user-42 subscribe
allow user:ops-bot private-* subscribe
deny role:muted * client-event
deny user:666 * *
deny * private-internal-* *
role role:admin moderator
role role:moderator member
role role:support member
role user:7 moderator
role user:99 muted
`

func BenchmarkPolicyCheck(b *testing.B) {
	cases := []struct {
		name, doc, channel string
		s                  Subject
		allowed            bool
	}{
		{"default/anonymous", DefaultPolicy, "public-news", Subject{}, true},
		{"default/user", DefaultPolicy, "private-chat.1", Subject{UserID: "alice", Roles: []string{"member"}}, true},
		{"realistic20/anonymous", realisticPolicy, "public-news", Subject{}, true},
		{"realistic20/signed-role", realisticPolicy, "presence-room-1", Subject{UserID: "alice", Roles: []string{"member", "moderator"}}, true},
		{"realistic20/role-line", realisticPolicy, "private-chat.1", Subject{UserID: "7"}, true},
		{"realistic20/denied", realisticPolicy, "private-internal-x", Subject{UserID: "1", Roles: []string{"admin"}}, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			p, err := CompilePolicy("app-1", c.doc, 1)
			if err != nil {
				b.Fatal(err)
			}
			if d := p.Check(c.s, c.channel, ActionSubscribe); d.Allowed != c.allowed {
				b.Fatalf("got %s", d.Reason())
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Check(c.s, c.channel, ActionSubscribe)
			}
		})
	}
}
