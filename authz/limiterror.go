package authz

import (
	"fmt"
	"strconv"
	"time"
)

// LimitError is a request refused by a rate limit. HTTP layers answer it
// with 429, a JSON body naming the limit, and the headers of Headers.
type LimitError struct {
	// Limit is the limit's name as settings and docs spell it, e.g.
	// "publishes_per_second".
	Limit   string
	Verdict Verdict
	// Message says what was refused and why, for the caller.
	Message string
}

func (e *LimitError) Error() string { return fmt.Sprintf("%s (%s)", e.Message, e.Limit) }

// WriteHeaders calls set with the Retry-After (only when refused) and
// X-RateLimit-* headers describing v at now; X-RateLimit-Reset is in
// seconds from now, like Retry-After. The value is only valid during the
// call: the numbers share one small buffer rather than a string each.
func (v Verdict) WriteHeaders(now time.Time, set func(name string, value []byte)) {
	var buf [20]byte
	reset := max(0, int64((v.Reset.Sub(now)+time.Second-1)/time.Second))
	set("X-RateLimit-Limit", strconv.AppendInt(buf[:0], v.Limit, 10))
	set("X-RateLimit-Remaining", strconv.AppendInt(buf[:0], max(0, v.Remaining), 10))
	set("X-RateLimit-Reset", strconv.AppendInt(buf[:0], reset, 10))
	if !v.Allowed {
		set("Retry-After", strconv.AppendInt(buf[:0], int64(v.RetryAfter(now)/time.Second), 10))
	}
}
