package authz

// maxGlobLen bounds a channel pattern. Pusher channel names are at most 164
// bytes, so 200 leaves room for stars while keeping the worst-case match
// (proportional to pattern length times name length) cheap.
const maxGlobLen = 200

// isGlobByte reports whether c may appear in a channel pattern: the
// characters Pusher allows in channel names, '#' (as in #server-to-user-1)
// and the wildcard '*'. Nothing else is special, so a tenant can never write
// a regular expression (POL-1).
func isGlobByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '_', '-', '=', '@', ',', '.', ';', '#', '*':
		return true
	}
	return false
}

// channelGlob reports whether the channel name matches glob: '*' matches any
// run of bytes, possibly empty, and every other byte matches itself, so the
// match is case-sensitive and anchored at both ends. It is the only
// pattern-matching function the Casbin matcher calls.
//
// It scans once and, on a mismatch, backtracks only to the most recent star,
// letting that star swallow one more byte. Going back to the latest star is
// enough: anything an earlier star could absorb, the later star can absorb
// instead, so the worst case is len(glob)*len(name) steps with no recursion.
func channelGlob(name, glob string) bool {
	g, n := 0, 0
	star, resume := -1, 0 // the latest star in glob and where in name it would stop
	for n < len(name) {
		switch {
		case g < len(glob) && glob[g] == '*':
			star, resume = g, n
			g++
		case g < len(glob) && glob[g] == name[n]:
			g++
			n++
		case star >= 0:
			resume++
			g, n = star+1, resume
		default:
			return false
		}
	}
	// The name is used up; only stars, which may match nothing, may remain.
	for g < len(glob) && glob[g] == '*' {
		g++
	}
	return g == len(glob)
}
