package tenants

import (
	"testing"
)

func TestChannelGlob(t *testing.T) {
	tests := []struct {
		glob, name string
		want       bool
	}{
		// '*' matches any run, so the dot before it must be there.
		{"private-chat.*", "private-chatX", false},
		{"private-chat.*", "private-chat.", true},
		{"private-chat.*", "private-chat.a.b", true},
		{"private-chat.*", "private-chat", false},
		// Dots are literal.
		{"a.b.c", "a.b.c", true},
		{"a.b.c", "aXbXc", false},
		{"a.b.c", "a.b.cd", false},
		// A lone star matches everything, including nothing.
		{"*", "", true},
		{"*", "public", true},
		{"*", "#server-to-user-1", true},
		{"**", "", true},
		{"#server-to-user-*", "#server-to-user-1", true},
		{"#server-to-user-*", "server-to-user-1", false},
		// Case-sensitive.
		{"chat", "Chat", false},
		{"Private-*", "private-a", false},
		// Anchored at both ends.
		{"chat", "chat", true},
		{"chat", "xchat", false},
		{"chat", "chatx", false},
		{"chat*", "xchat", false},
		{"*chat", "chatx", false},
		{"*chat*", "xchatx", true},
		// Several stars.
		{"a*b*c", "abc", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "abcbc", true},
		{"a*b*c", "acb", false},
		{"a*b*c", "abcx", false},
		{"a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"*-*-*", "presence-room-1", true},
		{"*-*-*", "presence-room", false},
		// Backtracking past a partial match of the literal after a star.
		{"*ab", "aab", true},
		{"*aab", "aaab", true},
		{"a*ab", "aab", true},
		{"", "", true},
		{"", "a", false},
	}
	for _, tt := range tests {
		if got := ChannelGlob(tt.name, tt.glob); got != tt.want {
			t.Errorf("ChannelGlob(%q, %q) = %t, want %t", tt.name, tt.glob, got, tt.want)
		}
	}
}

// refGlob is the obvious recursive definition of the glob language: a star
// matches nothing or one more byte, anything else matches itself. The memo
// only keeps runs of stars from taking exponential time.
func refGlob(name, glob string) bool {
	memo := map[[2]int]bool{}
	var match func(n, g int) bool
	match = func(n, g int) bool {
		if v, ok := memo[[2]int{n, g}]; ok {
			return v
		}
		var v bool
		switch {
		case g == len(glob):
			v = n == len(name)
		case glob[g] == '*':
			v = match(n, g+1) || (n < len(name) && match(n+1, g))
		default:
			v = n < len(name) && name[n] == glob[g] && match(n+1, g+1)
		}
		memo[[2]int{n, g}] = v
		return v
	}
	return match(0, 0)
}

func FuzzChannelGlob(f *testing.F) {
	f.Add("private-chat.a", "private-chat.*")
	f.Add("private-chatX", "private-chat.*")
	f.Add("aXXbYYc", "a*b*c")
	f.Add("#server-to-user-1", "*")
	f.Add("", "")
	f.Add("aaab", "*aab")
	f.Add("abab", "*ab*ab*")
	f.Add("ab", "a*b*")
	f.Fuzz(func(t *testing.T, name, glob string) {
		// The reference takes len(name)*len(glob) steps; channel names and
		// globs are short anyway.
		if len(name) > 256 || len(glob) > MaxGlobLen {
			t.Skip()
		}
		if got, want := ChannelGlob(name, glob), refGlob(name, glob); got != want {
			t.Fatalf("ChannelGlob(%q, %q) = %t, reference says %t", name, glob, got, want)
		}
	})
}
