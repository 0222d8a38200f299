package protocol

import (
	"strings"
	"unicode/utf8"
)

// ChannelKind is a channel's type, decided purely by its name prefix.
type ChannelKind uint8

const (
	Public ChannelKind = iota
	Private
	PrivateEncrypted
	Presence
	ServerToUser
)

// Channel-name prefixes, checked in the order pusher-js checks them.
const (
	PrefixPrivateEncrypted = "private-encrypted-"
	PrefixPrivate          = "private-"
	PrefixPresence         = "presence-"
	PrefixServerToUser     = "#server-to-user-"
)

// DebugChannel is the channel of an app's debug stream: Herald's own, for
// the admin console. Its name is outside the names clients and apps may
// use (ValidChannelName refuses it), so only the gateway's debug token
// opens it and nobody can publish to it.
const DebugChannel = "#herald-debug"

// MaxChannelNameLength is the documented limit on channel names, prefix
// included.
const MaxChannelNameLength = 164

// KindOf returns the kind of the channel called name.
func KindOf(name string) ChannelKind {
	switch {
	case strings.HasPrefix(name, PrefixPrivateEncrypted):
		return PrivateEncrypted
	case strings.HasPrefix(name, PrefixPrivate):
		return Private
	case strings.HasPrefix(name, PrefixPresence):
		return Presence
	case strings.HasPrefix(name, PrefixServerToUser):
		return ServerToUser
	}
	return Public
}

// NeedsAuth reports whether subscribing to a channel of kind k needs a
// signed token.
func (k ChannelKind) NeedsAuth() bool {
	return k == Private || k == PrivateEncrypted || k == Presence
}

// AllowsClientEvents reports whether clients may send client- events on a
// channel of kind k. Encrypted channels are excluded: their payloads are
// end-to-end encrypted by the tenant's server, and pusher-js never sends
// client events on them.
func (k ChannelKind) AllowsClientEvents() bool {
	return k == Private || k == Presence
}

func (k ChannelKind) String() string {
	switch k {
	case Private:
		return "private"
	case PrivateEncrypted:
		return "private-encrypted"
	case Presence:
		return "presence"
	case ServerToUser:
		return "server-to-user"
	}
	return "public"
}

// ValidChannelName reports whether name is a channel a client may subscribe
// to or an app may publish to: 1 to 164 characters from
// [A-Za-z0-9_\-=@,.;], or #server-to-user- followed by a non-empty user id
// (user ids have no documented character set, so only the length applies).
func ValidChannelName(name string) bool {
	if len(name) == 0 || len(name) > MaxChannelNameLength {
		return false
	}
	if strings.HasPrefix(name, PrefixServerToUser) {
		return len(name) > len(PrefixServerToUser)
	}
	for i := 0; i < len(name); i++ {
		if !channelByte[name[i]] {
			return false
		}
	}
	return true
}

// ServerToUserID returns the user id of a #server-to-user- channel.
func ServerToUserID(channel string) (string, bool) {
	if !strings.HasPrefix(channel, PrefixServerToUser) || len(channel) == len(PrefixServerToUser) {
		return "", false
	}
	return channel[len(PrefixServerToUser):], true
}

var channelByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_-=@,.;" {
		t[c] = true
	}
	return t
}()

// MaxEventNameLength is the limit on event names.
const MaxEventNameLength = 200

// ReservedEvent reports whether name belongs to the protocol or to Herald,
// which apps may not publish and clients may not send as client events.
func ReservedEvent(name string) bool {
	return strings.HasPrefix(name, "pusher:") || strings.HasPrefix(name, "pusher_internal:") || strings.HasPrefix(name, "herald:")
}

// ValidEventName reports whether an app may publish an event called name.
func ValidEventName(name string) bool {
	return len(name) > 0 && len(name) <= MaxEventNameLength && !ReservedEvent(name)
}

// Shorten cuts s to at most n bytes on a rune boundary, marking the cut
// with "…", so client-supplied names can be quoted in error messages and
// close reasons (which must be valid UTF-8) without growing them.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
