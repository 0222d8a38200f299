package gateway

import (
	"net/netip"
	"testing"
)

func TestClientIP_DOS1_XForwardedFor(t *testing.T) {
	proxies, err := ParseProxies("10.0.0.0/8, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr
	cases := []struct {
		name, peer, xff, want string
	}{
		{"untrusted peer's header is ignored", "203.0.113.9", "1.2.3.4", "203.0.113.9"},
		{"trusted proxy, one hop", "127.0.0.1", "198.51.100.7", "198.51.100.7"},
		{"client-written hops left of the real one are ignored", "127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"},
		{"chain of trusted proxies", "10.1.2.3", "198.51.100.7, 10.9.9.9", "198.51.100.7"},
		{"no header", "127.0.0.1", "", "127.0.0.1"},
		{"malformed hop", "127.0.0.1", "198.51.100.7, nonsense", "127.0.0.1"},
		{"everything trusted", "127.0.0.1", "10.0.0.1", "127.0.0.1"},
		{"IPv4-mapped peer", "::ffff:127.0.0.1", "198.51.100.7", "198.51.100.7"},
	}
	for _, tc := range cases {
		if got := proxies.ClientIP(addr(tc.peer), tc.xff); got != addr(tc.want) {
			t.Errorf("%s: ClientIP(%s, %q) = %s, want %s", tc.name, tc.peer, tc.xff, got, tc.want)
		}
	}
	var none Proxies
	if got := none.ClientIP(addr("127.0.0.1"), "198.51.100.7"); got != addr("127.0.0.1") {
		t.Errorf("with no trusted proxies the header was believed: %s", got)
	}
	if _, err := ParseProxies("10.0.0.0/8,not-an-ip"); err == nil {
		t.Error("a bad entry was accepted")
	}
}
