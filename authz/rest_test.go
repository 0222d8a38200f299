package authz

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/tenants"
)

const (
	testKeyName = "278d425bdf160c739803"
	testSecret  = "7ad3773142a6692b25b8"
)

var testKey = tenants.Key{Key: testKeyName, Secret: tenants.NewSecret(testSecret)}

// rawQuery joins key=value pairs as given (already escaped, in order), and,
// when sign is true, appends an auth_signature over them computed as in §8.1.
func rawQuery(method, path string, pairs []string, sign bool, secret string) string {
	q := strings.Join(pairs, "&")
	if !sign {
		return q
	}
	parsed, err := url.ParseQuery(q)
	if err != nil {
		panic(err)
	}
	lower := url.Values{}
	for k, vs := range parsed {
		lower[strings.ToLower(k)] = append(lower[strings.ToLower(k)], vs...)
	}
	sig := Sign(secret, StringToSign(method, path, lower))
	if q == "" {
		return "auth_signature=" + sig
	}
	return q + "&auth_signature=" + sig
}

func md5Hex(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

func TestVerifyRequest_Failures(t *testing.T) {
	app := newApp(t, "3", testKeyName, testSecret)
	now := vectorNow
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"name":"e","data":"{}","channels":["c"]}`)
	bodyMD5 := md5Hex(body)
	base := func(extra ...string) []string {
		return append([]string{"auth_key=" + testKeyName, "auth_timestamp=" + ts, "auth_version=1.0"}, extra...)
	}
	without := func(drop string, pairs []string) []string {
		var out []string
		for _, p := range pairs {
			if !strings.HasPrefix(p, drop+"=") {
				out = append(out, p)
			}
		}
		return out
	}
	at := func(d time.Duration) []string {
		return []string{"auth_key=" + testKeyName, "auth_timestamp=" + strconv.FormatInt(now.Add(d).Unix(), 10), "auth_version=1.0"}
	}
	const post, get, path = "POST", "GET", "/apps/3/events"
	tests := []struct {
		name   string
		method string
		pairs  []string
		sign   bool
		secret string // default testSecret
		query  string // overrides pairs
		body   []byte
		want   string // substring of the error; "" means success
		sigErr bool   // the error must be ErrRESTSignature itself
	}{
		{name: "valid GET", method: get, pairs: base(), sign: true},
		{name: "valid POST", method: post, pairs: base("body_md5=" + bodyMD5), sign: true, body: body},
		{name: "missing auth_key", method: get, pairs: without("auth_key", base()), sign: true, want: "missing auth_key"},
		{name: "missing auth_timestamp", method: get, pairs: without("auth_timestamp", base()), sign: true, want: "missing auth_timestamp"},
		{name: "missing auth_version", method: get, pairs: without("auth_version", base()), sign: true, want: "missing auth_version"},
		{name: "missing auth_signature", method: get, pairs: base(), sign: false, want: "missing auth_signature"},
		{name: "empty query", method: get, query: "", want: "missing auth_key"},
		{name: "repeated auth_key", method: get, pairs: base("auth_key=" + testKeyName), sign: true, want: "auth_key is given more than once"},
		{name: "repeated auth_key in other case", method: get, pairs: base("AUTH_KEY=" + testKeyName), sign: true, want: "auth_key is given more than once"},
		{name: "repeated auth_timestamp", method: get, pairs: base("auth_timestamp=" + ts), sign: true, want: "auth_timestamp is given more than once"},
		{name: "repeated auth_version", method: get, pairs: base("auth_version=1.0"), sign: true, want: "auth_version is given more than once"},
		{name: "repeated auth_signature", method: get, pairs: base("auth_signature=" + strings.Repeat("0", 64)), sign: true, want: "auth_signature is given more than once"},
		{name: "repeated body_md5", method: post, pairs: base("body_md5="+bodyMD5, "body_md5="+bodyMD5), sign: true, body: body, want: "body_md5 is given more than once"},
		{name: "auth_version 2.0", method: get, pairs: []string{"auth_key=" + testKeyName, "auth_timestamp=" + ts, "auth_version=2.0"}, sign: true, want: "auth_version must be 1.0"},
		{name: "auth_version 1", method: get, pairs: []string{"auth_key=" + testKeyName, "auth_timestamp=" + ts, "auth_version=1"}, sign: true, want: "auth_version must be 1.0"},
		{name: "auth_version empty", method: get, pairs: []string{"auth_key=" + testKeyName, "auth_timestamp=" + ts, "auth_version="}, sign: true, want: "auth_version must be 1.0"},
		{name: "timestamp not a number", method: get, pairs: []string{"auth_key=" + testKeyName, "auth_timestamp=soon", "auth_version=1.0"}, sign: true, want: "auth_timestamp must be"},
		{name: "timestamp in ms", method: get, pairs: []string{"auth_key=" + testKeyName, "auth_timestamp=" + ts + "000", "auth_version=1.0"}, sign: true, want: "seconds from the server's time"},
		{name: "timestamp fraction", method: get, pairs: []string{"auth_key=" + testKeyName, "auth_timestamp=" + ts + ".5", "auth_version=1.0"}, sign: true, want: "auth_timestamp must be"},
		{name: "timestamp huge", method: get, pairs: []string{"auth_key=" + testKeyName, "auth_timestamp=9223372036854775807", "auth_version=1.0"}, sign: true, want: "seconds from the server's time"},
		{name: "timestamp most negative", method: get, pairs: []string{"auth_key=" + testKeyName, "auth_timestamp=-9223372036854775808", "auth_version=1.0"}, sign: true, want: "seconds from the server's time"},
		{name: "timestamp -601s", method: get, pairs: at(-601 * time.Second), sign: true, want: "seconds from the server's time"},
		{name: "timestamp +601s", method: get, pairs: at(601 * time.Second), sign: true, want: "seconds from the server's time"},
		{name: "timestamp -600s", method: get, pairs: at(-600 * time.Second), sign: true},
		{name: "timestamp +600s", method: get, pairs: at(600 * time.Second), sign: true},
		{name: "timestamp -599s", method: get, pairs: at(-599 * time.Second), sign: true},
		{name: "timestamp +599s", method: get, pairs: at(599 * time.Second), sign: true},
		{name: "body without body_md5", method: post, pairs: base(), sign: true, body: body, want: "missing body_md5"},
		{name: "wrong body_md5", method: post, pairs: base("body_md5=" + md5Hex([]byte("{}"))), sign: true, body: body, want: "body_md5 does not match"},
		{name: "empty body_md5", method: post, pairs: base("body_md5="), sign: true, body: body, want: "missing body_md5"},
		{name: "upper-case body_md5", method: post, pairs: base("body_md5=" + strings.ToUpper(bodyMD5)), sign: true, body: body},
		{name: "body_md5 without a body is only signed", method: get, pairs: base("body_md5=" + bodyMD5), sign: true},
		{name: "malformed query", method: get, query: "auth_key=%zz", want: "malformed query string"},
		{name: "unknown key", method: get, pairs: []string{"auth_key=unknownkey", "auth_timestamp=" + ts, "auth_version=1.0"}, sign: true, sigErr: true},
		{name: "unknown key signed with its own secret", method: get, pairs: []string{"auth_key=unknownkey", "auth_timestamp=" + ts, "auth_version=1.0"}, sign: true, secret: "herald-unknown-key", sigErr: true},
		{name: "empty key", method: get, pairs: []string{"auth_key=", "auth_timestamp=" + ts, "auth_version=1.0"}, sign: true, sigErr: true},
		{name: "wrong secret", method: get, pairs: base(), sign: true, secret: "not-the-secret", sigErr: true},
		{name: "signature not hex", method: get, pairs: base("auth_signature=" + strings.Repeat("z", 64)), sigErr: true},
		{name: "signature short", method: get, pairs: base("auth_signature=" + strings.Repeat("0", 63)), sigErr: true},
		{name: "signature empty", method: get, pairs: base("auth_signature="), sigErr: true},
		{name: "signed for another method", method: get, query: rawQuery(post, "/apps/3/channels", base(), true, testSecret), sigErr: true},
		{name: "signed for another path", method: get, query: rawQuery(get, "/apps/4/channels", base(), true, testSecret), sigErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := "/apps/3/channels"
			if tt.method == post {
				p = path
			}
			secret := tt.secret
			if secret == "" {
				secret = testSecret
			}
			q := tt.query
			if tt.pairs != nil {
				q = rawQuery(tt.method, p, tt.pairs, tt.sign, secret)
			}
			view, err := VerifyRequest(app, Request{Method: tt.method, Path: p, RawQuery: q, Body: tt.body}, now, DefaultTimestampWindow)
			switch {
			case tt.sigErr:
				if err != ErrRESTSignature {
					t.Fatalf("VerifyRequest(%s) = %v, want ErrRESTSignature", q, err)
				}
			case tt.want == "":
				if err != nil {
					t.Fatalf("VerifyRequest(%s) = %v", q, err)
				}
				if view.Get("auth_key") != testKeyName {
					t.Fatalf("view %v has no auth_key", view)
				}
			default:
				var re *RESTError
				if !errors.As(err, &re) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("VerifyRequest(%s) = %v, want an error containing %q", q, err, tt.want)
				}
				if err == ErrRESTSignature {
					t.Fatalf("a request error is reported as a signature error")
				}
				if view != nil {
					t.Fatalf("view %v returned with an error", view)
				}
			}
		})
	}
}

// TestVerifyREST_SIG1_UnknownKeySameError: an unknown auth_key, a wrong
// signature and a malformed signature are indistinguishable to the caller.
func TestVerifyREST_SIG1_UnknownKeySameError(t *testing.T) {
	app := newApp(t, "3", testKeyName, testSecret)
	ts := strconv.FormatInt(vectorNow.Unix(), 10)
	p := "/apps/3/channels"
	queries := map[string]string{
		"unknown key":                      rawQuery("GET", p, []string{"auth_key=secretprobe", "auth_timestamp=" + ts, "auth_version=1.0"}, true, testSecret),
		"wrong signature":                  rawQuery("GET", p, []string{"auth_key=" + testKeyName, "auth_timestamp=" + ts, "auth_version=1.0"}, true, "wrong"),
		"malformed signature":              "auth_key=" + testKeyName + "&auth_timestamp=" + ts + "&auth_version=1.0&auth_signature=xyz",
		"unknown key, malformed signature": "auth_key=secretprobe&auth_timestamp=" + ts + "&auth_version=1.0&auth_signature=xyz",
	}
	for name, q := range queries {
		_, err := VerifyRequest(app, Request{Method: "GET", Path: p, RawQuery: q}, vectorNow, DefaultTimestampWindow)
		if err != ErrRESTSignature {
			t.Errorf("%s: %v, want ErrRESTSignature", name, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "secretprobe") || strings.Contains(msg, testKeyName) || strings.Contains(msg, testSecret) {
			t.Errorf("%s: error %q reveals a key or secret", name, msg)
		}
	}
}

// TestVerifyREST_SIG3_TimestampWindow checks the window either way and a
// per-app window below the default.
func TestVerifyREST_SIG3_TimestampWindow(t *testing.T) {
	app := newApp(t, "3", testKeyName, testSecret)
	for _, tc := range []struct {
		window time.Duration
		offset time.Duration
		ok     bool
	}{
		{DefaultTimestampWindow, 0, true},
		{DefaultTimestampWindow, 599 * time.Second, true},
		{DefaultTimestampWindow, -599 * time.Second, true},
		{DefaultTimestampWindow, 601 * time.Second, false},
		{DefaultTimestampWindow, -601 * time.Second, false},
		{30 * time.Second, 30 * time.Second, true},
		{30 * time.Second, -31 * time.Second, false},
		{30 * time.Second, 31 * time.Second, false},
	} {
		signedAt := vectorNow.Add(tc.offset)
		q := SignRequest(testKey, "GET", "/apps/3/channels", nil, nil, signedAt)
		_, err := VerifyRequest(app, Request{Method: "GET", Path: "/apps/3/channels", RawQuery: q}, vectorNow, tc.window)
		if (err == nil) != tc.ok {
			t.Errorf("window %v, signed %v from now: %v, want ok=%v", tc.window, tc.offset, err, tc.ok)
		}
	}
}

func TestVerifyRequest_UpperCaseSignature(t *testing.T) {
	app := newApp(t, "3", testKeyName, testSecret)
	q := SignRequest(testKey, "GET", "/apps/3/channels", url.Values{"info": {"user_count"}}, nil, vectorNow)
	i := strings.Index(q, "auth_signature=") + len("auth_signature=")
	upper := q[:i] + strings.ToUpper(q[i:])
	if upper == q {
		t.Fatal("signature has no letters to upper-case")
	}
	if _, err := VerifyRequest(app, Request{Method: "GET", Path: "/apps/3/channels", RawQuery: upper}, vectorNow, DefaultTimestampWindow); err != nil {
		t.Fatalf("upper-case signature: %v", err)
	}
}

// TestVerifyRequest_DecodedQuery: values are signed decoded (a%20b signs
// "a b", and so does a+b), keys lower-cased; the returned view is that
// decoded, lower-cased query.
func TestVerifyRequest_DecodedQuery(t *testing.T) {
	app := newApp(t, "3", testKeyName, testSecret)
	ts := strconv.FormatInt(vectorNow.Unix(), 10)
	p := "/apps/3/channels"
	signedOver := "GET\n/apps/3/channels\nauth_key=" + testKeyName + "&auth_timestamp=" + ts + "&auth_version=1.0&filter_by_prefix=a b&info=user_count,subscription_count"
	sig := Sign(testSecret, signedOver)
	for _, q := range []string{
		"auth_key=" + testKeyName + "&auth_timestamp=" + ts + "&auth_version=1.0&filter_by_prefix=a%20b&info=user_count,subscription_count&auth_signature=" + sig,
		"auth_key=" + testKeyName + "&auth_timestamp=" + ts + "&auth_version=1.0&filter_by_prefix=a+b&info=user_count%2Csubscription_count&auth_signature=" + sig,
		"auth_signature=" + sig + "&INFO=user_count,subscription_count&Filter_By_Prefix=a%20b&auth_version=1.0&auth_timestamp=" + ts + "&%61uth_key=" + testKeyName,
	} {
		view, err := VerifyRequest(app, Request{Method: "get", Path: p, RawQuery: q}, vectorNow, DefaultTimestampWindow)
		if err != nil {
			t.Errorf("VerifyRequest(%s): %v", q, err)
			continue
		}
		if view.Get("filter_by_prefix") != "a b" || view.Get("info") != "user_count,subscription_count" {
			t.Errorf("view %v", view)
		}
	}
}

func TestVerifyRequest_RepeatedKeysSortedByValue(t *testing.T) {
	q := url.Values{"b": {"2", "1"}, "a": {"z"}, "auth_signature": {"x"}}
	if got, want := StringToSign("post", "/p", q), "POST\n/p\na=z&b=1&b=2"; got != want {
		t.Errorf("StringToSign = %q, want %q", got, want)
	}
	if q["b"][0] != "2" {
		t.Error("StringToSign reordered the caller's values")
	}
	app := newApp(t, "3", testKeyName, testSecret)
	raw := SignRequest(testKey, "GET", "/apps/3/channels", url.Values{"x": {"2", "1"}}, nil, vectorNow)
	swapped := strings.Replace(strings.Replace(raw, "x=2", "x=TMP", 1), "x=1", "x=2", 1)
	swapped = strings.Replace(swapped, "x=TMP", "x=1", 1)
	if swapped == raw {
		t.Fatal("swap failed")
	}
	if _, err := VerifyRequest(app, Request{Method: "GET", Path: "/apps/3/channels", RawQuery: swapped}, vectorNow, DefaultTimestampWindow); err != nil {
		t.Errorf("repeated values in another order: %v", err)
	}
}

// TestSignRequest_MixedCaseParams: parameters whose names differ only in
// case are all kept and signed.
func TestSignRequest_MixedCaseParams(t *testing.T) {
	app := newApp(t, "3", testKeyName, testSecret)
	params := url.Values{"Info": {"a"}, "info": {"b"}, "INFO": {"c"}}
	raw := SignRequest(testKey, "GET", "/apps/3/channels", params, nil, vectorNow)
	view, err := VerifyRequest(app, Request{Method: "GET", Path: "/apps/3/channels", RawQuery: raw}, vectorNow, DefaultTimestampWindow)
	if err != nil {
		t.Fatal(err)
	}
	got := append([]string(nil), view["info"]...)
	sort.Strings(got)
	if strings.Join(got, ",") != "a,b,c" {
		t.Errorf("info = %v, want a, b and c", view["info"])
	}
}

// signedContent is an independent rendering of what §8.1 signs: upper-case
// method, path, and the query decoded, keys lower-cased, auth_signature
// dropped, sorted by key then value, joined k=v with &. It is false for a
// query that does not parse.
func signedContent(r Request) (string, bool) {
	q, err := url.ParseQuery(r.RawQuery)
	if err != nil {
		return "", false
	}
	type kv struct{ k, v string }
	var pairs []kv
	for k, vs := range q {
		lk := strings.ToLower(k)
		if lk == "auth_signature" {
			continue
		}
		for _, v := range vs {
			pairs = append(pairs, kv{lk, v})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.ToUpper(r.Method) + "\n" + r.Path + "\n" + strings.Join(parts, "&"), true
}

// mutate returns a copy of r with one byte of one field changed: fields 0-3
// (method, path, query, body) get byte pos XOR mask, fields 4-7 get the byte
// mask inserted at pos.
func mutate(r Request, field uint8, pos uint16, mask byte) Request {
	r.Body = append([]byte(nil), r.Body...)
	fields := []*[]byte{new([]byte), new([]byte), new([]byte), &r.Body}
	*fields[0], *fields[1], *fields[2] = []byte(r.Method), []byte(r.Path), []byte(r.RawQuery)
	b := fields[field%4]
	if field%8 >= 4 || len(*b) == 0 {
		i := int(pos) % (len(*b) + 1)
		*b = append((*b)[:i], append([]byte{mask}, (*b)[i:]...)...)
	} else {
		if mask == 0 {
			mask = 1
		}
		(*b)[int(pos)%len(*b)] ^= mask
	}
	r.Method, r.Path, r.RawQuery = string(*fields[0]), string(*fields[1]), string(*fields[2])
	return r
}

// checkMutation fails if a mutated request verifies although it changes what
// orig signed.
func checkMutation(t *testing.T, app *tenants.App, orig, mut Request) (accepted bool) {
	t.Helper()
	if _, err := VerifyRequest(app, mut, vectorNow, DefaultTimestampWindow); err != nil {
		return false
	}
	oc, _ := signedContent(orig)
	mc, ok := signedContent(mut)
	if !ok || mc != oc || string(mut.Body) != string(orig.Body) {
		t.Fatalf("mutated request verifies:\n%+q\nsigned content %q\noriginal %+q\nsigned content %q", mut, mc, orig, oc)
	}
	return true
}

// TestVerifyREST_SIG2_FlippedByte flips and inserts every byte of method,
// path, query and body of signed requests: none that changes the signed
// content verifies, and flipping the low bit never verifies at all.
func TestVerifyREST_SIG2_FlippedByte(t *testing.T) {
	app := newApp(t, "3", testKeyName, testSecret)
	body := []byte(`{"name":"my-event","data":"{\"message\":\"hello world\"}","channels":["my-channel"]}`)
	reqs := []Request{
		{Method: "POST", Path: "/apps/3/events", Body: body,
			RawQuery: SignRequest(testKey, "POST", "/apps/3/events", nil, body, vectorNow)},
		{Method: "GET", Path: "/apps/3/channels",
			RawQuery: SignRequest(testKey, "GET", "/apps/3/channels", url.Values{"filter_by_prefix": {"a b"}, "info": {"user_count"}}, nil, vectorNow)},
		{Method: "POST", Path: "/apps/3/users/user-123/terminate_connections", Body: []byte("{}"),
			RawQuery: SignRequest(testKey, "POST", "/apps/3/users/user-123/terminate_connections", nil, []byte("{}"), vectorNow)},
	}
	for _, orig := range reqs {
		if _, err := VerifyRequest(app, orig, vectorNow, DefaultTimestampWindow); err != nil {
			t.Fatalf("original %+q: %v", orig, err)
		}
		tried, accepted := 0, 0
		for field := uint8(0); field < 8; field++ {
			n := len([]string{orig.Method, orig.Path, orig.RawQuery, string(orig.Body)}[field%4]) + 1
			for pos := 0; pos < n; pos++ {
				for _, mask := range []byte{0x01, 0x02, 0x20, 0x80, 0xff, '&', '=', '%', '+'} {
					if field < 4 && pos == n-1 {
						continue // flips only inside the field
					}
					mut := mutate(orig, field, uint16(pos), mask)
					tried++
					if checkMutation(t, app, orig, mut) {
						accepted++
						if field < 4 && mask == 0x01 {
							t.Errorf("low-bit flip verifies: %+q", mut)
						}
					}
				}
			}
		}
		// Some mutations legitimately keep the content (upper-casing the
		// method or a hex digit, an empty "&&" pair), but they are rare.
		if accepted*20 > tried {
			t.Errorf("%d of %d mutations verified", accepted, tried)
		}
	}
}

func FuzzVerifyRequest(f *testing.F) {
	vf := loadVectors(f)
	for _, v := range vf.Vectors {
		if v.Category != "http_api_request" {
			continue
		}
		var exp struct {
			Method       string  `json:"method"`
			PathAndQuery string  `json:"path_and_query_on_wire"`
			Body         *string `json:"body"`
		}
		if err := json.Unmarshal(v.Expected, &exp); err != nil {
			f.Fatal(err)
		}
		u, err := url.Parse(exp.PathAndQuery)
		if err != nil {
			f.Fatal(err)
		}
		var body []byte
		if exp.Body != nil {
			body = []byte(*exp.Body)
		}
		f.Add(exp.Method, u.Path, u.RawQuery, body, uint8(len(body)%8), uint16(len(u.RawQuery)), byte(1))
	}
	app := newApp(f, "3", testKeyName, testSecret)
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte, field uint8, pos uint16, mask byte) {
		// Any request at all: never panics, and a success is a request
		// that carries exactly one of each auth parameter.
		if view, err := VerifyRequest(app, Request{Method: method, Path: path, RawQuery: query, Body: body}, vectorNow, DefaultTimestampWindow); err == nil {
			for _, p := range []string{"auth_key", "auth_timestamp", "auth_version", "auth_signature"} {
				if len(view[p]) != 1 {
					t.Fatalf("verified with %s = %q", p, view[p])
				}
			}
		}
		// A correctly signed request built from the inputs verifies; any
		// mutation of it that changes the signed content does not.
		params, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		for k, vs := range params {
			if lk := strings.ToLower(k); strings.HasPrefix(lk, "auth_") || lk == "body_md5" || strings.ContainsAny(k, "&=") {
				delete(params, k)
			}
			for _, v := range vs {
				if strings.Contains(v, "&") {
					delete(params, k) // refused by design: see TestVerifyREST_SIG2_EncodedSeparators
				}
			}
		}
		orig := Request{Method: method, Path: path, Body: body,
			RawQuery: SignRequest(testKey, method, path, params, body, vectorNow)}
		if _, err := VerifyRequest(app, orig, vectorNow, DefaultTimestampWindow); err != nil {
			t.Fatalf("signed request %+q does not verify: %v", orig, err)
		}
		checkMutation(t, app, orig, mutate(orig, field, pos, mask))
	})
}

// forbiddenSignatureCompare reports whether a source line compares something
// that looks like a signature, MAC or hash sum with ==, !=, bytes.Equal or
// strings.EqualFold, all of which leak timing (SIG-1). String literals and
// comments are blanked first, so `k != "auth_signature"` (a parameter name,
// not a secret) passes, and so does a comparison with a number
// (subtle.ConstantTimeCompare(a, b) != 1).
var (
	literalOrComment  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|`[^`]*`|//.*$")
	mentionsSignature = regexp.MustCompile(`(?i)sig|mac|sum|digest`)
	numberCompare     = regexp.MustCompile(`[!=]=\s*\d+\b`)
	variableTimeEqual = regexp.MustCompile(`==|!=|bytes\.Equal\b|strings\.EqualFold\b`)
)

func forbiddenSignatureCompare(line string) bool {
	code := literalOrComment.ReplaceAllString(line, `""`)
	code = numberCompare.ReplaceAllString(code, "")
	return mentionsSignature.MatchString(code) && variableTimeEqual.MatchString(code)
}

func TestForbiddenSignatureCompare(t *testing.T) {
	for line, want := range map[string]bool{
		`if got == sig {`:                                       true,
		`if string(mac) == string(want) {`:                      true,
		`if string(m.Sum(nil)) != string(want) || !ok {`:        true,
		`return bytes.Equal(m.Sum(nil), signature)`:             true,
		`ok := strings.EqualFold(authSig, expected)`:            true,
		`if hex.EncodeToString(digest) == got { // "x"`:         true,
		`if lower.Get("auth_signature") == got {`:               false, // literal only
		`if hmac.Equal(m.Sum(nil), want) {`:                     false,
		`if len(s) != 2*sha256.Size {`:                          false,
		`if k != "auth_signature" {`:                            false,
		`if n == 0 { // compare the signature in constant time`: false,
		`if subtle.ConstantTimeCompare(sig, want) != 1 {`:       false,
		`if sig == 1 || 0 == mac {`:                             true,
		"if k == `sig` {":                                       false,
	} {
		if got := forbiddenSignatureCompare(line); got != want {
			t.Errorf("forbiddenSignatureCompare(%q) = %v, want %v", line, got, want)
		}
	}
}

// TestForbiddenPatterns_SIG1 scans the package's non-test sources: no line
// that mentions a signature or MAC may compare with ==, bytes.Equal or
// strings.EqualFold. Signatures are compared with hmac.Equal after hex
// decoding.
func TestForbiddenPatterns_SIG1(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	scanned := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		fh, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for n := 1; sc.Scan(); n++ {
			if line := sc.Text(); forbiddenSignatureCompare(line) {
				t.Errorf("%s:%d: variable-time comparison on a signature: %s", name, n, strings.TrimSpace(line))
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		scanned++
	}
	if scanned < 2 {
		t.Fatalf("scanned %d files; expected rest.go and signature.go", scanned)
	}
}

// A ';' is a channel-name character the SDKs send raw in filter_by_prefix;
// url.ParseQuery would refuse it.
func TestVerifyREST_SemicolonInQuery(t *testing.T) {
	app := &tenants.App{ID: "3", Enabled: true, Keys: []tenants.Key{{Key: "k", Secret: tenants.NewSecret("s")}}}
	now := time.Unix(1353088179, 0)
	q := SignRequest(app.Keys[0], "GET", "/apps/3/channels", url.Values{"filter_by_prefix": {"a;b"}}, nil, now)
	q = strings.Replace(q, "a%3Bb", "a;b", 1)
	got, err := VerifyRequest(app, Request{Method: "GET", Path: "/apps/3/channels", RawQuery: q}, now, time.Minute)
	if err != nil || got.Get("filter_by_prefix") != "a;b" {
		t.Fatalf("VerifyRequest = %v, %v; want filter_by_prefix a;b", got, err)
	}
}

// SIG-2: "x=1&y=2" and "x=1%26y%3D2" would sign as the same string; the
// encoded form is refused so a handler never acts on a query it was not
// shown.
func TestVerifyREST_SIG2_EncodedSeparators(t *testing.T) {
	app := &tenants.App{ID: "3", Enabled: true, Keys: []tenants.Key{{Key: "k", Secret: tenants.NewSecret("s")}}}
	now := time.Unix(1353088179, 0)
	q := SignRequest(app.Keys[0], "GET", "/apps/3/channels", url.Values{"x": {"1"}, "y": {"2"}}, nil, now)
	forged := strings.Replace(q, "x=1&y=2", "x=1%26y%3D2", 1)
	if forged == q {
		t.Fatal("test setup: separators not found in the signed query")
	}
	if _, err := VerifyRequest(app, Request{Method: "GET", Path: "/apps/3/channels", RawQuery: forged}, now, time.Minute); err == nil {
		t.Fatal("a query with encoded separators verified")
	}
}
