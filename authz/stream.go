package authz

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/tenants"
)

// Stream tokens authorise private and presence channels on connections
// that have no socket_id handshake to sign (SSE, and the history endpoint
// for frontends): the tenant's backend signs the channel list, the user and
// an expiry, and the frontend passes the token as a query parameter. The
// secret never leaves the backend.

// MaxStreamTokenLife caps how far in the future a stream token may expire.
const MaxStreamTokenLife = 24 * time.Hour

// Stream token errors; their text is sent to the client.
var (
	ErrStreamTokenExpired = errors.New("the stream token has expired: get a new one from the app")
	ErrStreamTokenTooLong = fmt.Errorf("the stream token expires more than %s ahead; use a shorter expiry", MaxStreamTokenLife)
)

// StreamTokenMessage is what a stream token signs:
// "herald-stream\n<key>\n<channels, sorted, one per line>\n<user id>\n<expires>",
// with expires in Unix seconds. Channel names cannot hold a newline, so the
// message is unambiguous.
func StreamTokenMessage(key string, channels []string, userID string, expires int64) string {
	sorted := slices.Clone(channels)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var b strings.Builder
	b.WriteString("herald-stream\n")
	b.WriteString(key)
	b.WriteByte('\n')
	for _, ch := range sorted {
		b.WriteString(ch)
		b.WriteByte('\n')
	}
	b.WriteString(userID)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(expires, 10))
	return b.String()
}

// StreamToken returns the token for a stream of channels for userID until
// expires: key:hex(HMAC-SHA256(secret, StreamTokenMessage(...))).
func StreamToken(key tenants.Key, channels []string, userID string, expires int64) string {
	return key.Key + ":" + Sign(key.Secret.Reveal(), StreamTokenMessage(key.Key, channels, userID, expires))
}

// VerifyStreamToken checks a stream token for exactly these channels, user
// and expiry, in constant time, and that it is neither expired nor too long
// lived.
func VerifyStreamToken(app *tenants.App, token string, channels []string, userID string, expires int64, now time.Time) error {
	i := strings.IndexByte(token, ':')
	if i <= 0 {
		return ErrTokenMalformed
	}
	if err := verifyToken(app, []byte(token), []byte(StreamTokenMessage(token[:i], channels, userID, expires))); err != nil {
		return err
	}
	switch at := time.Unix(expires, 0); {
	case !at.After(now):
		return ErrStreamTokenExpired
	case at.Sub(now) > MaxStreamTokenLife:
		return ErrStreamTokenTooLong
	}
	return nil
}
