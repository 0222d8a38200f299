package protocol

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestKindOf(t *testing.T) {
	tests := []struct {
		name                    string
		kind                    ChannelKind
		needsAuth, clientEvents bool
		kindName                string
	}{
		{"my-channel", Public, false, false, "public"},
		{"cache-x", Public, false, false, "public"},
		{"private", Public, false, false, "public"},
		{"presence", Public, false, false, "public"},
		{"Private-x", Public, false, false, "public"},
		{"PRESENCE-x", Public, false, false, "public"},
		{"x-private-y", Public, false, false, "public"},
		{"server-to-user-u1", Public, false, false, "public"},
		{"#server-to-user", Public, false, false, "public"},
		{"private-x", Private, true, true, "private"},
		{"private-", Private, true, true, "private"},
		{"private-cache-x", Private, true, true, "private"},
		{"private-encrypted", Private, true, true, "private"},
		{"private-encryptedx", Private, true, true, "private"},
		{"private-encrypted-x", PrivateEncrypted, true, false, "private-encrypted"},
		{"private-encrypted-cache-x", PrivateEncrypted, true, false, "private-encrypted"},
		{"presence-x", Presence, true, true, "presence"},
		{"presence-cache-x", Presence, true, true, "presence"},
		{"presence-private-x", Presence, true, true, "presence"},
		{"#server-to-user-u1", ServerToUser, false, false, "server-to-user"},
		{"#server-to-user-", ServerToUser, false, false, "server-to-user"},
	}
	for _, tt := range tests {
		k := KindOf(tt.name)
		if k != tt.kind {
			t.Errorf("KindOf(%q) = %v, want %v", tt.name, k, tt.kind)
		}
		if k.NeedsAuth() != tt.needsAuth {
			t.Errorf("KindOf(%q).NeedsAuth() = %v", tt.name, k.NeedsAuth())
		}
		if k.AllowsClientEvents() != tt.clientEvents {
			t.Errorf("KindOf(%q).AllowsClientEvents() = %v", tt.name, k.AllowsClientEvents())
		}
		if k.String() != tt.kindName {
			t.Errorf("KindOf(%q).String() = %q, want %q", tt.name, k.String(), tt.kindName)
		}
	}
}

func TestValidChannelName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"my-channel", true},
		{"a", true},
		{"private-a_b-c=d@e,f.g;h", true},
		{"ABCxyz0189_-=@,.;", true},
		{"presence-cache-x", true},
		{strings.Repeat("a", 164), true},
		{"private-" + strings.Repeat("a", 156), true},
		{strings.Repeat("a", 165), false},
		{"private-" + strings.Repeat("a", 157), false},
		{"private-" + strings.Repeat("a", 193), false}, // the SDK's 201-char case
		{"private-" + strings.Repeat("a", 192), false}, // 200 chars: the SDK allows it, Herald's documented limit does not
		{"", false},
		{"private-x#y", false},
		{"#foo", false},
		{"#server-to-user", false},
		{"a b", false},
		{"a/b", false},
		{"a:b", false},
		{"a\x00", false},
		{"a\n", false},
		{"zoë", false},
		{"a*", false},
		{"a+b", false},
		{"a%20b", false},
		{"#server-to-user-", false},
		{"#server-to-user-u1", true},
		{"#server-to-user-auth0|abc", true},     // user ids have no charset
		{"#server-to-user-zoë @home/x#1", true}, // ...at all
		{"#server-to-user-" + strings.Repeat("u", 148), true},
		{"#server-to-user-" + strings.Repeat("u", 149), false},
	}
	for _, tt := range tests {
		if got := ValidChannelName(tt.name); got != tt.ok {
			t.Errorf("ValidChannelName(%q) [%d bytes] = %v, want %v", tt.name, len(tt.name), got, tt.ok)
		}
	}
	// Every single byte outside the documented set is refused.
	const allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-=@,.;"
	for c := 0; c < 256; c++ {
		want := strings.IndexByte(allowed, byte(c)) >= 0
		if got := ValidChannelName("x" + string([]byte{byte(c)})); got != want {
			t.Errorf("ValidChannelName(\"x\\x%02x\") = %v, want %v", c, got, want)
		}
	}
}

func TestServerToUserID(t *testing.T) {
	tests := []struct {
		channel, id string
		ok          bool
	}{
		{"#server-to-user-u1", "u1", true},
		{"#server-to-user-auth0|abc", "auth0|abc", true},
		{"#server-to-user--", "-", true},
		{"#server-to-user-#server-to-user-x", "#server-to-user-x", true},
		{"#server-to-user-", "", false},
		{"#server-to-user", "", false},
		{"server-to-user-u1", "", false},
		{"private-u1", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		id, ok := ServerToUserID(tt.channel)
		if id != tt.id || ok != tt.ok {
			t.Errorf("ServerToUserID(%q) = %q, %v; want %q, %v", tt.channel, id, ok, tt.id, tt.ok)
		}
	}
}

// TestValidEventName_SIG5 proves the reserved prefixes of SIG-5: apps cannot
// publish protocol or Herald events.
func TestValidEventName_SIG5(t *testing.T) {
	tests := []struct {
		name          string
		valid, reserv bool
	}{
		{"my-event", true, false},
		{"client-typing", true, false},
		{"e", true, false},
		{"pusher", true, false},
		{"pusherx:e", true, false},
		{"herald", true, false},
		{"Pusher:x", true, false}, // prefixes are case-sensitive, like pusher-js
		{"x-pusher:e", true, false},
		{strings.Repeat("e", 200), true, false},
		{strings.Repeat("e", 201), false, false},
		{"", false, false},
		{"pusher:", false, true},
		{"pusher:subscribe", false, true},
		{"pusher:error", false, true},
		{"pusher_internal:", false, true},
		{"pusher_internal:member_added", false, true},
		{"pusher_internal:subscription_succeeded", false, true},
		{"herald:", false, true},
		{"herald:anything", false, true},
	}
	for _, tt := range tests {
		if got := ValidEventName(tt.name); got != tt.valid {
			t.Errorf("ValidEventName(%q) = %v, want %v", tt.name, got, tt.valid)
		}
		if got := ReservedEvent(tt.name); got != tt.reserv {
			t.Errorf("ReservedEvent(%q) = %v, want %v", tt.name, got, tt.reserv)
		}
	}
}

// TestReconnects follows the pusher-js reactions of reference §6.
func TestReconnects(t *testing.T) {
	tests := []struct {
		code int
		want bool
	}{
		{CloseNormal, true},
		{CloseGoingAway, true},
		{1002, true},
		{CloseUnsupported, true},
		{1006, true},
		{CloseMessageTooBig, true},
		{CloseInternalServer, true},
		{3000, true},
		{CodeTLSRequired, true}, // pusher-js switches to wss and reconnects at once
		{CodeAppNotFound, false},
		{4002, false},
		{CodeAppDisabled, false},
		{CodeOverQuota, false},
		{CodePathNotFound, false},
		{4006, false},
		{CodeUnsupportedProtocol, false},
		{CodeNoProtocol, false},
		{CodeUnauthorized, false},
		{4010, false},
		{4099, false},
		{CodeOverCapacity, true},
		{4101, true},
		{4199, true},
		{CodeReconnect, true},
		{CodePongTimeout, true},
		{4202, true},
		{4299, true},
		{4300, false},
		{CodeClientEventRateLimit, false},
		{CodeWatchlistLimit, false},
		{4999, false},
	}
	for _, tt := range tests {
		if got := Reconnects(tt.code); got != tt.want {
			t.Errorf("Reconnects(%d) = %v, want %v", tt.code, got, tt.want)
		}
	}
}

func TestCodes(t *testing.T) {
	// The numbers are the protocol's (reference §6); a typo here would make
	// pusher-js react differently.
	tests := []struct{ got, want int }{
		{CodeTLSRequired, 4000}, {CodeAppNotFound, 4001}, {CodeAppDisabled, 4003},
		{CodeOverQuota, 4004}, {CodePathNotFound, 4005}, {CodeUnsupportedProtocol, 4007},
		{CodeNoProtocol, 4008}, {CodeUnauthorized, 4009}, {CodeOverCapacity, 4100},
		{CodeReconnect, 4200}, {CodePongTimeout, 4201}, {CodeClientEventRateLimit, 4301},
		{CodeWatchlistLimit, 4302},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("code %d, want %d", tt.got, tt.want)
		}
	}
}

func TestShorten(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"abcdefghijk", 5, "abcde…"},
		{"aé", 2, "a…"}, // é is two bytes: never cut inside it
		{"🙂🙂", 5, "🙂…"}, // a four-byte rune
	} {
		got := Shorten(tc.in, tc.n)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("Shorten(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
