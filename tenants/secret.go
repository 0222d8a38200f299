package tenants

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Secret is an app secret. Every way of printing, logging or marshalling it
// shows "[redacted]"; only Reveal gives the value, for HMAC keys. The value
// sits behind a pointer so that even fmt printing a struct that holds a
// Secret in an unexported field (where it cannot call our methods) shows an
// address, never the secret.
type Secret struct{ value *string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{value: &s} }

// Reveal returns the secret itself.
func (s Secret) Reveal() string {
	if s.value == nil {
		return ""
	}
	return *s.value
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

const redacted = "[redacted]"

func (s Secret) String() string                { return redacted }
func (s Secret) GoString() string              { return redacted }
func (s Secret) LogValue() slog.Value          { return slog.StringValue(redacted) }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }
func (s Secret) MarshalJSON() ([]byte, error)  { return json.Marshal(redacted) }
func (s Secret) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(redacted)) }
func (s *Secret) UnmarshalText(b []byte) error { *s = NewSecret(string(b)); return nil }
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("secret must be a string")
	}
	*s = NewSecret(v)
	return nil
}
