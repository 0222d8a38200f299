package authz

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"strings"

	"github.com/heraldrt/herald/tenants"
)

// Token errors. Their text is sent to the client, so it never contains a
// secret or the expected signature.
var (
	ErrTokenMalformed = errors.New("auth must have the form <app key>:<hex signature>")
	ErrTokenWrongKey  = errors.New("the key in the auth token is not a key of this app")
	ErrTokenSignature = errors.New("invalid signature")
)

// Sign returns the lowercase hex HMAC-SHA256 of message under secret: the
// signature of every Pusher token and request.
func Sign(secret, message string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(message))
	return hex.EncodeToString(m.Sum(nil))
}

// ChannelToken returns the auth token a tenant backend gives a client for a
// channel: key:hex(HMAC(secret, socket_id:channel[:channel_data])).
func ChannelToken(key tenants.Key, socketID, channel, channelData string) string {
	msg := socketID + ":" + channel
	if channelData != "" {
		msg += ":" + channelData
	}
	return key.Key + ":" + Sign(key.Secret.Reveal(), msg)
}

// UserToken returns the sign-in token for user data:
// key:hex(HMAC(secret, socket_id::user::user_data)).
func UserToken(key tenants.Key, socketID, userData string) string {
	return key.Key + ":" + Sign(key.Secret.Reveal(), socketID+"::user::"+userData)
}

// VerifyChannelToken checks a subscription token against the connection's
// own socket id, the channel and, when the client sent one, the exact
// channel_data string (it is part of the signature whenever present).
func VerifyChannelToken(app *tenants.App, token []byte, socketID string, channel []byte, channelData []byte, hasChannelData bool) error {
	parts := [][]byte{[]byte(socketID), colon, channel}
	if hasChannelData {
		parts = append(parts, colon, channelData)
	}
	return verifyToken(app, token, parts...)
}

// VerifyUserToken checks a pusher:signin token.
func VerifyUserToken(app *tenants.App, token []byte, socketID string, userData []byte) error {
	return verifyToken(app, token, []byte(socketID), userSep, userData)
}

var (
	colon   = []byte(":")
	userSep = []byte("::user::")
)

func verifyToken(app *tenants.App, token []byte, parts ...[]byte) error {
	i := strings.IndexByte(string(token), ':')
	if i <= 0 {
		return ErrTokenMalformed
	}
	want, ok := decodeSignature(token[i+1:])
	if !ok {
		return ErrTokenMalformed
	}
	secret, ok := app.SecretFor(string(token[:i]))
	if !ok {
		return ErrTokenWrongKey
	}
	m := hmac.New(sha256.New, []byte(secret.Reveal()))
	writeAll(m, parts...)
	if !hmac.Equal(m.Sum(nil), want) {
		return ErrTokenSignature
	}
	return nil
}

func writeAll(h hash.Hash, parts ...[]byte) {
	for _, p := range parts {
		h.Write(p)
	}
}

// decodeSignature decodes a hex HMAC-SHA256 in either case to its 32 bytes.
func decodeSignature(s []byte) ([]byte, bool) {
	if len(s) != 2*sha256.Size {
		return nil, false
	}
	out := make([]byte, sha256.Size)
	if _, err := hex.Decode(out, s); err != nil {
		return nil, false
	}
	return out, true
}
