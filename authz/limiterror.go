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

// Headers returns the Retry-After and X-RateLimit-* headers describing v
// at now; X-RateLimit-Reset is in seconds from now, like Retry-After.
func (v Verdict) Headers(now time.Time) [][2]string {
	reset := max(0, int64((v.Reset.Sub(now)+time.Second-1)/time.Second))
	h := [][2]string{
		{"X-RateLimit-Limit", strconv.FormatInt(v.Limit, 10)},
		{"X-RateLimit-Remaining", strconv.FormatInt(max(0, v.Remaining), 10)},
		{"X-RateLimit-Reset", strconv.FormatInt(reset, 10)},
	}
	if !v.Allowed {
		h = append(h, [2]string{"Retry-After", strconv.FormatInt(int64(v.RetryAfter(now)/time.Second), 10)})
	}
	return h
}
