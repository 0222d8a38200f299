package gateway

import (
	"fmt"
	"net/netip"
	"strings"
)

// Proxies are the addresses whose X-Forwarded-For a node believes. An empty
// set believes nobody, so a client cannot choose its own address.
type Proxies []netip.Prefix

// ParseProxies parses a comma-separated list of IP addresses and CIDR
// prefixes, e.g. "10.0.0.0/8,127.0.0.1".
func ParseProxies(list string) (Proxies, error) {
	var out Proxies
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither an IP address nor a CIDR prefix", item)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func (p Proxies) trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, prefix := range p {
		if prefix.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the address of the client behind a request from peer
// carrying X-Forwarded-For header xff. A proxy appends the address it saw,
// so the list is read from the right, skipping trusted proxies: the first
// untrusted address is the client. Anything a client wrote further left is
// never believed. Without a trusted peer, the peer itself is the client.
func (p Proxies) ClientIP(peer netip.Addr, xff string) netip.Addr {
	peer = peer.Unmap()
	if !p.trusts(peer) || xff == "" {
		return peer
	}
	hops := strings.Split(xff, ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer // a malformed hop: believe nothing past it
		}
		if !p.trusts(a) {
			return a.Unmap()
		}
	}
	return peer
}
