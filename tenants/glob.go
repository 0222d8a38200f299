package tenants

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxGlobLen bounds a channel pattern. Pusher channel names are at most 164
// bytes, so 200 leaves room for stars while keeping the worst-case match
// (proportional to pattern length times name length) cheap.
const MaxGlobLen = 200

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

// ChannelGlob reports whether the channel name matches glob: '*' matches any
// run of bytes, possibly empty, and every other byte matches itself, so the
// match is case-sensitive and anchored at both ends. It is the only
// pattern-matching function the Casbin matcher of channel policies calls,
// and it picks an app's durable channels.
//
// The text before the first star must start the name and the text after the
// last star must end it. Each piece between stars is then taken at its
// leftmost place in what remains: placing a piece earlier only leaves more
// room for the pieces after it, so if any placement works this one does.
// There is no backtracking, and a tenant's pattern cannot make a check cost
// more than a few scans of the name.
func ChannelGlob(name, glob string) bool {
	head, rest, found := strings.Cut(glob, "*")
	if !found {
		return name == glob
	}
	if !strings.HasPrefix(name, head) {
		return false
	}
	name = name[len(head):]
	var tail string
	if i := strings.LastIndexByte(rest, '*'); i >= 0 {
		rest, tail = rest[:i], rest[i+1:]
	} else {
		rest, tail = "", rest
	}
	// Cut the tail off what the head left, so the two cannot overlap.
	if !strings.HasSuffix(name, tail) {
		return false
	}
	name = name[:len(name)-len(tail)]
	for rest != "" {
		var piece string
		piece, rest, _ = strings.Cut(rest, "*")
		i := strings.Index(name, piece)
		if i < 0 {
			return false
		}
		name = name[i+len(piece):]
	}
	return true
}

// CheckGlob validates a channel pattern; the error says what is wrong.
func CheckGlob(glob string) error {
	if glob == "" {
		return fmt.Errorf("empty channel pattern")
	}
	for i := 0; i < len(glob); i++ {
		if !isGlobByte(glob[i]) {
			r, _ := utf8.DecodeRuneInString(glob[i:])
			return fmt.Errorf("invalid character %q in channel pattern %q: use A-Z a-z 0-9 _ - = @ , . ; # and * as the wildcard", r, glob)
		}
	}
	// Every byte is ASCII by now, so bytes are characters.
	if len(glob) > MaxGlobLen {
		return fmt.Errorf("the channel pattern is %d characters; the limit is %d", len(glob), MaxGlobLen)
	}
	return nil
}
