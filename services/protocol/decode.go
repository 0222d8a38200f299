package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Decoding errors. They are reported to the client as pusher:error messages,
// so they read as sentences about the client's frame.
var (
	ErrInvalidJSON  = errors.New("invalid JSON")
	ErrInvalidUTF8  = errors.New("frame is not valid UTF-8")
	ErrNotObject    = errors.New("frame must be a JSON object")
	ErrNoEvent      = errors.New("frame has no event name")
	ErrFieldType    = errors.New("field has the wrong type")
	ErrTooDeep      = errors.New("JSON nested too deeply")
	errUnterminated = ErrInvalidJSON
)

// maxDepth bounds nesting so that a hostile frame cannot exhaust the stack:
// at most 64 levels of objects and arrays, the frame itself included.
const maxDepth = 64

// Frame is a decoded client frame. Its slices point into the decoded input
// (or, for names that contained escapes, into fresh memory), so a Frame is
// valid only as long as the input buffer is.
type Frame struct {
	Event   []byte // the event name, unescaped
	Channel []byte // the channel, unescaped; nil if absent
	Data    []byte // the raw JSON text of data; nil if absent
	// Seq is a server frame's sequence number on a durable channel; 0 if
	// absent or not a whole number.
	Seq uint64
	// Epoch is a server frame's epoch on a durable channel, unescaped;
	// nil if absent or not a string.
	Epoch []byte
}

// DecodeFrame decodes one client frame {"event","channel"?,"data"?} into f.
// Unknown top-level fields are ignored (pusher-js never sends any); a client
// user_id is ignored too, because the server stamps presence client events
// itself. It does not allocate unless the event or channel name, or a
// top-level key, contains JSON escapes.
func DecodeFrame(b []byte, f *Frame) error {
	*f = Frame{}
	if !utf8.Valid(b) {
		return ErrInvalidUTF8
	}
	s := scanner{b: b}
	s.skipSpace()
	if s.i >= len(b) || b[s.i] != '{' {
		if _, err := s.value(0); err != nil {
			return err
		}
		return ErrNotObject
	}
	var eventRaw, channelRaw, epochRaw []byte
	err := s.object(0, func(key, val []byte) error {
		switch string(key) {
		case "event":
			if val[0] != '"' {
				return ErrFieldType
			}
			eventRaw = val
		case "channel":
			if val[0] != '"' {
				return ErrFieldType
			}
			channelRaw = val
		case "data":
			f.Data = val
		case "seq":
			f.Seq = wholeNumber(val)
		case "epoch":
			if val[0] == '"' {
				epochRaw = val
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.skipSpace()
	if s.i != len(b) {
		return ErrInvalidJSON
	}
	if eventRaw == nil {
		return ErrNoEvent
	}
	if f.Event, err = unquote(eventRaw); err != nil {
		return err
	}
	if len(f.Event) == 0 {
		return ErrNoEvent
	}
	if channelRaw != nil {
		if f.Channel, err = unquote(channelRaw); err != nil {
			return err
		}
	}
	if epochRaw != nil {
		if f.Epoch, err = unquote(epochRaw); err != nil {
			return err
		}
	}
	return nil
}

// AuthData holds the fields of pusher:subscribe, pusher:unsubscribe and
// pusher:signin data. ChannelData and UserData are the exact strings the
// tenant's backend signed.
type AuthData struct {
	Channel        []byte
	Auth           []byte
	ChannelData    []byte
	HasChannelData bool
	UserData       []byte
}

// DecodeAuthData decodes the data of a subscribe, unsubscribe or signin
// frame. pusher-js sends an object; older clients send the same object as a
// JSON string, which is accepted too.
func DecodeAuthData(data []byte, out *AuthData) error {
	*out = AuthData{}
	if len(data) == 0 {
		return ErrFieldType
	}
	if data[0] == '"' {
		// Validate the whole literal first: DecodeAuthData is exported and
		// unquote trusts its input.
		vs := scanner{b: data}
		if _, end, err := vs.str(); err != nil || end != len(data) {
			return ErrInvalidJSON
		}
		inner, err := unquote(data)
		if err != nil {
			return err
		}
		data = inner
	}
	s := scanner{b: data}
	s.skipSpace()
	if s.i >= len(data) || data[s.i] != '{' {
		return ErrFieldType
	}
	err := s.object(0, func(key, val []byte) error {
		var dst *[]byte
		switch string(key) {
		case "channel":
			dst = &out.Channel
		case "auth":
			dst = &out.Auth
		case "channel_data":
			dst = &out.ChannelData
			out.HasChannelData = true
		case "user_data":
			dst = &out.UserData
		default:
			return nil
		}
		if val[0] != '"' {
			return ErrFieldType
		}
		v, err := unquote(val)
		*dst = v
		return err
	})
	if err != nil {
		return err
	}
	s.skipSpace()
	if s.i != len(data) {
		return ErrInvalidJSON
	}
	return nil
}

// StringValue returns the content of raw if it is a JSON string, and false
// otherwise.
func StringValue(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	s := scanner{b: raw}
	if _, end, err := s.str(); err != nil || end != len(raw) {
		return nil, false
	}
	v, err := unquote(raw)
	return v, err == nil
}

// unquote decodes a JSON string literal that the scanner already validated.
// Without escapes it returns a subslice of raw.
func unquote(raw []byte) ([]byte, error) {
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, ErrInvalidJSON
			}
			return []byte(s), nil
		}
	}
	return inner, nil
}

// scanner validates and walks JSON text without building values.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object walks the object starting at s.i and calls fn with each key's
// content (unescaped) and the raw text of its value.
func (s *scanner) object(depth int, fn func(key, val []byte) error) error {
	if depth >= maxDepth {
		return ErrTooDeep
	}
	s.i++ // '{'
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.skipSpace()
		ks, ke, err := s.str()
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return ErrInvalidJSON
		}
		s.i++
		s.skipSpace()
		vs, err := s.value(depth + 1)
		if err != nil {
			return err
		}
		if fn != nil {
			key := s.b[ks+1 : ke-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				// "\u0065vent" is the key "event", as for any JSON parser.
				if key, err = unquote(s.b[ks:ke]); err != nil {
					return err
				}
			}
			if err := fn(key, s.b[vs:s.i]); err != nil {
				return err
			}
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return errUnterminated
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return ErrInvalidJSON
		}
	}
}

// value skips one JSON value and returns where it started.
func (s *scanner) value(depth int) (start int, err error) {
	start = s.i
	if s.i >= len(s.b) {
		return start, errUnterminated
	}
	switch c := s.b[s.i]; {
	case c == '{':
		err = s.object(depth, nil)
	case c == '[':
		err = s.array(depth)
	case c == '"':
		_, _, err = s.str()
	case c == '-' || (c >= '0' && c <= '9'):
		err = s.number()
	case c == 't':
		err = s.literal("true")
	case c == 'f':
		err = s.literal("false")
	case c == 'n':
		err = s.literal("null")
	default:
		err = ErrInvalidJSON
	}
	return start, err
}

func (s *scanner) array(depth int) error {
	if depth >= maxDepth {
		return ErrTooDeep
	}
	s.i++ // '['
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		s.skipSpace()
		if _, err := s.value(depth + 1); err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return errUnterminated
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return ErrInvalidJSON
		}
	}
}

// str skips a string literal and returns its bounds, quotes included.
func (s *scanner) str() (start, end int, err error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return 0, 0, ErrInvalidJSON
	}
	start = s.i
	s.i++
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return start, s.i, nil
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return 0, 0, errUnterminated
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return 0, 0, errUnterminated
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return 0, 0, ErrInvalidJSON
					}
				}
				s.i += 6
			default:
				return 0, 0, ErrInvalidJSON
			}
		case c < 0x20:
			return 0, 0, ErrInvalidJSON
		default:
			s.i++
		}
	}
	return 0, 0, errUnterminated
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *scanner) number() error {
	b := s.b
	if s.i < len(b) && b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(b) && b[s.i] == '0':
		s.i++
	case s.i < len(b) && b[s.i] >= '1' && b[s.i] <= '9':
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	default:
		return ErrInvalidJSON
	}
	if s.i < len(b) && b[s.i] == '.' {
		s.i++
		if s.i >= len(b) || b[s.i] < '0' || b[s.i] > '9' {
			return ErrInvalidJSON
		}
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if s.i >= len(b) || b[s.i] < '0' || b[s.i] > '9' {
			return ErrInvalidJSON
		}
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	}
	return nil
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return ErrInvalidJSON
	}
	s.i += len(lit)
	return nil
}

// wholeNumber returns the value of a JSON number made only of digits, or 0
// if it has a sign, a fraction, an exponent or more than 19 digits.
func wholeNumber(b []byte) uint64 {
	if len(b) == 0 || len(b) > 19 {
		return 0
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}
