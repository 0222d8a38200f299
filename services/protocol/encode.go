package protocol

import (
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// AppendEvent appends the server frame
// {"event":E,"channel":C,"data":D} to dst, with data encoded as a JSON string
// (Pusher relays data as a string; pusher-js decodes it again when it parses
// as JSON). An empty channel is left out. userID, when not empty, adds the
// "user_id" field that presence client events carry.
func AppendEvent(dst []byte, event, channel string, data []byte, userID string) []byte {
	return append(appendEventFields(dst, event, channel, data, userID), '}')
}

// AppendDurableEvent appends the frame of an event on a durable channel:
// AppendEvent's frame with the event's sequence number as a last field,
// "seq", which pusher-js ignores and Herald's clients use as their cursor.
func AppendDurableEvent(dst []byte, event, channel string, data []byte, userID string, seq uint64) []byte {
	dst = appendEventFields(dst, event, channel, data, userID)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	return append(dst, '}')
}

// AppendSubscribed appends pusher_internal:subscription_succeeded. On a
// durable channel (epoch set or seq above 0) it carries the channel's
// "epoch" and "seq": the position after which the subscription's live
// events follow.
func AppendSubscribed(dst []byte, channel string, data []byte, durable bool, epoch string, seq uint64) []byte {
	dst = appendEventFields(dst, "pusher_internal:subscription_succeeded", channel, data, "")
	if durable {
		dst = append(dst, `,"epoch":`...)
		dst = AppendString(dst, epoch)
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	return append(dst, '}')
}

func appendEventFields(dst []byte, event, channel string, data []byte, userID string) []byte {
	dst = append(dst, `{"event":`...)
	dst = AppendString(dst, event)
	if channel != "" {
		dst = append(dst, `,"channel":`...)
		dst = AppendString(dst, channel)
	}
	dst = append(dst, `,"data":`...)
	dst = appendStringBytes(dst, data)
	if userID != "" {
		dst = append(dst, `,"user_id":`...)
		dst = AppendString(dst, userID)
	}
	return dst
}

// AppendError appends a pusher:error frame. A code of 0 is written as null,
// which hosted Pusher uses for non-fatal errors.
func AppendError(dst []byte, code int, message string) []byte {
	dst = append(dst, `{"event":"pusher:error","data":{"code":`...)
	if code == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, int64(code), 10)
	}
	dst = append(dst, `,"message":`...)
	dst = AppendString(dst, message)
	return append(dst, "}}"...)
}

// AppendString appends s as a JSON string literal.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = appendEscape(dst, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			// Invalid UTF-8 becomes U+FFFD so that a browser never fails
			// the whole WebSocket over one bad frame; U+2028/9 are escaped
			// for JavaScript consumers that eval or embed the text.
			dst = append(dst, s[start:i]...)
			if r == utf8.RuneError {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, `\u202`...)
				dst = append(dst, hexDigits[r&0xF])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendStringBytes is AppendString for a byte slice. It reads b through a
// zero-copy string view: AppendString only reads its argument and keeps no
// reference to it, so the view never outlives b.
func appendStringBytes(dst []byte, b []byte) []byte {
	return AppendString(dst, unsafe.String(unsafe.SliceData(b), len(b)))
}

const hexDigits = "0123456789abcdef"

func appendEscape(dst []byte, c byte) []byte {
	switch c {
	case '"':
		return append(dst, '\\', '"')
	case '\\':
		return append(dst, '\\', '\\')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}
