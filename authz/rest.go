package authz

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/tenants"
)

// DefaultTimestampWindow is how far auth_timestamp may be from the server's
// clock, either way (Pusher's documented 600 s).
const DefaultTimestampWindow = 600 * time.Second

// RESTError is a rejected REST signature. Its message names the problem and
// is safe to send to the caller.
type RESTError struct{ msg string }

func (e *RESTError) Error() string { return e.msg }

func restErr(msg string) error { return &RESTError{msg: msg} }

// ErrRESTSignature is returned both for an unknown auth_key and for a wrong
// signature, so the answer does not reveal which keys exist.
var ErrRESTSignature = restErr("invalid auth_key or auth_signature")

// Request is the part of an HTTP request a REST signature covers.
type Request struct {
	Method   string // e.g. "POST"
	Path     string // the decoded path, e.g. /apps/3/events
	RawQuery string // the query string as received, percent-encoded
	Body     []byte
}

// VerifyRequest checks a signed REST request for app as in the protocol
// reference §8.1: the auth parameters are present once each, auth_version
// is 1.0, the timestamp is within window of now, body_md5 matches any
// non-empty body, and auth_signature is the HMAC of method, decoded path and
// the sorted, decoded query under the secret of auth_key. It returns the
// decoded query, the only view of it a handler should read.
func VerifyRequest(app *tenants.App, r Request, now time.Time, window time.Duration) (url.Values, error) {
	lower, err := parseQuery(r.RawQuery)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"auth_key", "auth_timestamp", "auth_version", "auth_signature"} {
		switch len(lower[name]) {
		case 0:
			return nil, restErr("missing " + name + " query parameter")
		case 1:
		default:
			return nil, restErr(name + " is given more than once")
		}
	}
	if len(lower["body_md5"]) > 1 {
		return nil, restErr("body_md5 is given more than once")
	}
	if lower.Get("auth_version") != "1.0" {
		return nil, restErr("auth_version must be 1.0")
	}
	ts, err := strconv.ParseInt(lower.Get("auth_timestamp"), 10, 64)
	if err != nil {
		return nil, restErr("auth_timestamp must be a Unix time in seconds")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > window || d < -window {
		return nil, restErr("auth_timestamp is more than " + strconv.Itoa(int(window.Seconds())) + " seconds from the server's time; check the clock")
	}
	if len(r.Body) > 0 {
		sum := md5.Sum(r.Body)
		got := strings.ToLower(lower.Get("body_md5"))
		if got == "" {
			return nil, restErr("missing body_md5 query parameter for a request with a body")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(hex.EncodeToString(sum[:]))) != 1 {
			return nil, restErr("body_md5 does not match the request body")
		}
	}
	want, ok := decodeSignature([]byte(lower.Get("auth_signature")))
	secret, known := app.SecretFor(lower.Get("auth_key"))
	if !known {
		// Spend the same HMAC on an unknown key so the timing does not tell
		// which keys exist.
		secret = tenants.NewSecret("herald-unknown-key")
	}
	m := hmac.New(sha256.New, []byte(secret.Reveal()))
	m.Write([]byte(StringToSign(r.Method, r.Path, lower)))
	if !hmac.Equal(m.Sum(nil), want) || !ok || !known {
		return nil, ErrRESTSignature
	}
	return lower, nil
}

// parseQuery decodes a query string for signing: keys are lower-cased and
// values percent-decoded. Unlike url.ParseQuery it accepts ';' (a valid
// channel-name character that the SDKs send raw). It refuses a decoded key
// containing '&' or '=' and a decoded value containing '&', because those
// would make two different queries sign as the same string.
func parseQuery(raw string) (url.Values, error) {
	q := url.Values{}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || strings.ContainsAny(key, "&=") || strings.Contains(value, "&") {
			return nil, restErr("malformed query string")
		}
		key = strings.ToLower(key)
		q[key] = append(q[key], value)
	}
	return q, nil
}

// StringToSign builds "METHOD\npath\nsorted query" from a decoded query with
// lower-case keys, leaving out auth_signature. Repeated keys are sorted by
// value.
func StringToSign(method, path string, query url.Values) string {
	keys := make([]string, 0, len(query))
	for k := range query {
		if k != "auth_signature" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(strings.ToUpper(method))
	b.WriteByte('\n')
	b.WriteString(path)
	b.WriteByte('\n')
	first := true
	for _, k := range keys {
		vs := slices.Clone(query[k])
		slices.Sort(vs)
		for _, v := range vs {
			if !first {
				b.WriteByte('&')
			}
			first = false
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	return b.String()
}

// SignRequest returns the query string (auth parameters and params, with
// auth_signature last) that signs a request the way the official SDKs do.
// Herald's own clients (the bench tool, tests) use it.
func SignRequest(key tenants.Key, method, path string, params url.Values, body []byte, now time.Time) string {
	q := url.Values{}
	for k, vs := range params {
		lk := strings.ToLower(k)
		q[lk] = append(q[lk], vs...) // "Info" and "info" are both kept
	}
	q.Set("auth_key", key.Key)
	q.Set("auth_timestamp", strconv.FormatInt(now.Unix(), 10))
	q.Set("auth_version", "1.0")
	if len(body) > 0 {
		sum := md5.Sum(body)
		q.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	sig := Sign(key.Secret.Reveal(), StringToSign(method, path, q))
	return q.Encode() + "&auth_signature=" + sig
}
