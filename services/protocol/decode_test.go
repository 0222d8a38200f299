package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// pusherJSFrames are the exact text frames pusher-js 8.6.0 sent in the
// vector pusherjs_client_frames (protocol reference §12), socket 1234.1234.
var pusherJSFrames = []string{
	`{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}`,
	`{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}`,
	`{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:63eaccd4782488e4f0c6eb6f3572bd3b27eea7bd01b7ddd6a134d6156bf501c3","channel_data":"{\"user_id\":\"u1\",\"user_info\":{\"name\":\"Alice\"}}","channel":"presence-foobar"}}`,
	`{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:e6a18892d037c5d5e76a2265df4f086ffc38631605530dfd214aa5bff495f533","channel":"private-encrypted-foobar"}}`,
	`{"event":"pusher:signin","data":{"auth":"278d425bdf160c739803:af6ca402c6ffee0b071006cf9e753a73532f8089ff2dda12cca59d2a3c295243","user_data":"{\"id\":\"u1\"}"}}`,
	`{"event":"pusher:subscribe","data":{"auth":"","channel":"#server-to-user-u1"}}`,
	`{"event":"client-typing","data":{"typing":true},"channel":"private-foobar"}`,
	`{"event":"pusher:pong","data":{}}`,
	`{"event":"pusher:unsubscribe","data":{"channel":"my-channel"}}`,
}

func TestDecodeFrame_PusherJSFrames(t *testing.T) {
	want := []struct {
		event, channel, data string
		auth                 AuthData
	}{
		{"pusher:subscribe", "", `{"auth":"","channel":"my-channel"}`,
			AuthData{Channel: []byte("my-channel"), Auth: []byte("")}},
		{"pusher:subscribe", "", "", AuthData{Channel: []byte("private-foobar"),
			Auth: []byte("278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4")}},
		{"pusher:subscribe", "", "", AuthData{Channel: []byte("presence-foobar"),
			Auth:        []byte("278d425bdf160c739803:63eaccd4782488e4f0c6eb6f3572bd3b27eea7bd01b7ddd6a134d6156bf501c3"),
			ChannelData: []byte(`{"user_id":"u1","user_info":{"name":"Alice"}}`), HasChannelData: true}},
		{"pusher:subscribe", "", "", AuthData{Channel: []byte("private-encrypted-foobar"),
			Auth: []byte("278d425bdf160c739803:e6a18892d037c5d5e76a2265df4f086ffc38631605530dfd214aa5bff495f533")}},
		{"pusher:signin", "", "", AuthData{
			Auth:     []byte("278d425bdf160c739803:af6ca402c6ffee0b071006cf9e753a73532f8089ff2dda12cca59d2a3c295243"),
			UserData: []byte(`{"id":"u1"}`)}},
		{"pusher:subscribe", "", "", AuthData{Channel: []byte("#server-to-user-u1"), Auth: []byte("")}},
		{"client-typing", "private-foobar", `{"typing":true}`, AuthData{}},
		{"pusher:pong", "", `{}`, AuthData{}},
		{"pusher:unsubscribe", "", `{"channel":"my-channel"}`, AuthData{Channel: []byte("my-channel")}},
	}
	for i, frame := range pusherJSFrames {
		var f Frame
		if err := DecodeFrame([]byte(frame), &f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		w := want[i]
		if string(f.Event) != w.event || string(f.Channel) != w.channel {
			t.Errorf("frame %d: event %q channel %q, want %q %q", i, f.Event, f.Channel, w.event, w.channel)
		}
		if w.channel == "" && f.Channel != nil {
			t.Errorf("frame %d: Channel = %q, want nil", i, f.Channel)
		}
		if w.data != "" && string(f.Data) != w.data {
			t.Errorf("frame %d: data %q, want %q", i, f.Data, w.data)
		}
		if !strings.HasPrefix(w.event, "pusher:") || w.event == "pusher:pong" {
			continue
		}
		var a AuthData
		if err := DecodeAuthData(f.Data, &a); err != nil {
			t.Fatalf("frame %d: DecodeAuthData: %v", i, err)
		}
		assertAuthData(t, a, w.auth)
	}
}

func assertAuthData(t *testing.T, got, want AuthData) {
	t.Helper()
	eq := func(name string, g, w []byte) {
		t.Helper()
		if !bytes.Equal(g, w) || (g == nil) != (w == nil) {
			t.Errorf("%s = %q (nil %v), want %q (nil %v)", name, g, g == nil, w, w == nil)
		}
	}
	eq("Channel", got.Channel, want.Channel)
	eq("Auth", got.Auth, want.Auth)
	eq("ChannelData", got.ChannelData, want.ChannelData)
	eq("UserData", got.UserData, want.UserData)
	if got.HasChannelData != want.HasChannelData {
		t.Errorf("HasChannelData = %v, want %v", got.HasChannelData, want.HasChannelData)
	}
}

func TestDecodeFrame_Valid(t *testing.T) {
	tests := []struct {
		name                 string
		in                   string
		event, channel, data string
		noChannel, noData    bool
	}{
		{name: "event only", in: `{"event":"pusher:ping"}`, event: "pusher:ping", noChannel: true, noData: true},
		{name: "data object", in: `{"event":"e","data":{"a":[1,2,{"b":null}]}}`, event: "e", data: `{"a":[1,2,{"b":null}]}`, noChannel: true},
		{name: "data string", in: `{"event":"pusher:subscribe","data":"{\"auth\":\"\",\"channel\":\"c\"}"}`, event: "pusher:subscribe", data: `"{\"auth\":\"\",\"channel\":\"c\"}"`, noChannel: true},
		{name: "data number", in: `{"event":"e","data":-1.5e+3}`, event: "e", data: `-1.5e+3`, noChannel: true},
		{name: "data literals", in: `{"event":"e","data":[true,false,null]}`, event: "e", data: `[true,false,null]`, noChannel: true},
		{name: "data null", in: `{"event":"e","data":null}`, event: "e", data: `null`, noChannel: true},
		{name: "whitespace everywhere", in: " \t\r\n{ \"event\" :\n\"e\" , \"channel\" : \"c\" ,\"data\" : [ ] } \n", event: "e", channel: "c", data: `[ ]`},
		{name: "key order", in: `{"data":1,"channel":"c","event":"e"}`, event: "e", channel: "c", data: "1"},
		{name: "unknown fields ignored", in: `{"x":{"event":"no"},"event":"e","user_id":"spoof","y":[{}]}`, event: "e", noChannel: true, noData: true},
		{name: "keys are case-sensitive", in: `{"event":"e","Event":1,"CHANNEL":{}}`, event: "e", noChannel: true, noData: true},
		{name: "duplicate key last wins", in: `{"event":"a","event":"b"}`, event: "b", noChannel: true, noData: true},
		{name: "escaped event", in: `{"event":"a\"b\\c\/d\n\u0041"}`, event: "a\"b\\c/d\nA", noChannel: true, noData: true},
		{name: "escaped channel", in: `{"event":"e","channel":"private-\u0066oo"}`, event: "e", channel: "private-foo", noData: true},
		{name: "unicode raw", in: `{"event":"client-ü🙂","channel":"c"}`, event: "client-ü🙂", channel: "c", noData: true},
		{name: "unicode escaped surrogate pair", in: `{"event":"\ud83d\ude42"}`, event: "🙂", noChannel: true, noData: true},
		{name: "lone surrogate becomes U+FFFD", in: `{"event":"\ud800"}`, event: "\uFFFD", noChannel: true, noData: true},
		{name: "escaped key", in: `{"\u0065vent":"e","ch\u0061nnel":"c"}`, event: "e", channel: "c", noData: true},
		{name: "empty channel", in: `{"event":"e","channel":""}`, event: "e", channel: "", noData: true},
		{name: "U+2028 raw in string", in: "{\"event\":\"a\u2028b\"}", event: "a\u2028b", noChannel: true, noData: true},
		{name: "DEL raw in string", in: "{\"event\":\"a\x7fb\"}", event: "a\x7fb", noChannel: true, noData: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Frame
			if err := DecodeFrame([]byte(tt.in), &f); err != nil {
				t.Fatalf("DecodeFrame(%q) = %v", tt.in, err)
			}
			if string(f.Event) != tt.event {
				t.Errorf("Event = %q, want %q", f.Event, tt.event)
			}
			if tt.noChannel != (f.Channel == nil) || string(f.Channel) != tt.channel {
				t.Errorf("Channel = %q (nil %v), want %q (nil %v)", f.Channel, f.Channel == nil, tt.channel, tt.noChannel)
			}
			if tt.noData != (f.Data == nil) || string(f.Data) != tt.data {
				t.Errorf("Data = %q (nil %v), want %q (nil %v)", f.Data, f.Data == nil, tt.data, tt.noData)
			}
			checkAgainstEncodingJSON(t, []byte(tt.in), &f)
		})
	}
}

func TestDecodeFrame_Errors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", ``, ErrInvalidJSON},
		{"only space", "  \n", ErrInvalidJSON},
		{"trailing garbage", `{"event":"e"}x`, ErrInvalidJSON},
		{"two objects", `{"event":"e"}{"event":"e"}`, ErrInvalidJSON},
		{"trailing comma", `{"event":"e",}`, ErrInvalidJSON},
		{"trailing comma in array", `{"event":"e","data":[1,]}`, ErrInvalidJSON},
		{"missing colon", `{"event" "e"}`, ErrInvalidJSON},
		{"missing comma", `{"event":"e" "data":1}`, ErrInvalidJSON},
		{"missing value", `{"event":}`, ErrInvalidJSON},
		{"unquoted key", `{event:"e"}`, ErrInvalidJSON},
		{"single quotes", `{'event':'e'}`, ErrInvalidJSON},
		{"number key", `{1:"e"}`, ErrInvalidJSON},
		{"leading zero", `{"event":"e","data":01}`, ErrInvalidJSON},
		{"bare minus", `{"event":"e","data":-}`, ErrInvalidJSON},
		{"dot without digits", `{"event":"e","data":1.}`, ErrInvalidJSON},
		{"leading dot", `{"event":"e","data":.5}`, ErrInvalidJSON},
		{"exponent without digits", `{"event":"e","data":1e}`, ErrInvalidJSON},
		{"exponent sign only", `{"event":"e","data":1e+}`, ErrInvalidJSON},
		{"plus sign", `{"event":"e","data":+1}`, ErrInvalidJSON},
		{"hex number", `{"event":"e","data":0x10}`, ErrInvalidJSON},
		{"NaN", `{"event":"e","data":NaN}`, ErrInvalidJSON},
		{"Infinity", `{"event":"e","data":Infinity}`, ErrInvalidJSON},
		{"bad literal", `{"event":"e","data":tru}`, ErrInvalidJSON},
		{"capital literal", `{"event":"e","data":True}`, ErrInvalidJSON},
		{"bad escape", `{"event":"\x"}`, ErrInvalidJSON},
		{"bad escape in key", `{"ev\ent":"e"}`, ErrInvalidJSON},
		{"short unicode escape", `{"event":"\u12"}`, ErrInvalidJSON},
		{"non-hex unicode escape", `{"event":"\u12g4"}`, ErrInvalidJSON},
		{"escaped single quote", `{"event":"\'"}`, ErrInvalidJSON},
		{"raw newline in string", "{\"event\":\"a\nb\"}", ErrInvalidJSON},
		{"raw tab in string", "{\"event\":\"a\tb\"}", ErrInvalidJSON},
		{"raw NUL in string", "{\"event\":\"a\x00b\"}", ErrInvalidJSON},
		{"raw control in data", "{\"event\":\"e\",\"data\":\"\x1f\"}", ErrInvalidJSON},
		{"unterminated object", `{"event":"e"`, ErrInvalidJSON},
		{"unterminated string", `{"event":"e`, ErrInvalidJSON},
		{"unterminated escape", `{"event":"e\`, ErrInvalidJSON},
		{"unterminated array", `{"event":"e","data":[1`, ErrInvalidJSON},
		{"unterminated key", `{"eve`, ErrInvalidJSON},
		{"only open brace", `{`, ErrInvalidJSON},
		{"close without open", `}`, ErrInvalidJSON},
		{"comment", `{"event":"e"/**/}`, ErrInvalidJSON},
		{"form feed is not whitespace", "{\"event\":\"e\"\f}", ErrInvalidJSON},
		{"NBSP is not whitespace", "{\"event\":\"e\"\u00a0}", ErrInvalidJSON},
		{"BOM", "\ufeff{\"event\":\"e\"}", ErrInvalidJSON},
		{"array", `[{"event":"e"}]`, ErrNotObject},
		{"string", `"event"`, ErrNotObject},
		{"number", `42`, ErrNotObject},
		{"null", `null`, ErrNotObject},
		{"true", `true`, ErrNotObject},
		{"empty object", `{}`, ErrNoEvent},
		{"no event", `{"channel":"c","data":{}}`, ErrNoEvent},
		{"empty event", `{"event":""}`, ErrNoEvent},
		{"event differs in case", `{"Event":"e"}`, ErrNoEvent},
		{"nested event only", `{"data":{"event":"e"}}`, ErrNoEvent},
		{"event number", `{"event":1}`, ErrFieldType},
		{"event null", `{"event":null}`, ErrFieldType},
		{"event object", `{"event":{}}`, ErrFieldType},
		{"event array", `{"event":["e"]}`, ErrFieldType},
		{"channel number", `{"event":"e","channel":1}`, ErrFieldType},
		{"channel null", `{"event":"e","channel":null}`, ErrFieldType},
		{"channel bool", `{"event":"e","channel":true}`, ErrFieldType},
		{"invalid UTF-8", "{\"event\":\"\xff\"}", ErrInvalidUTF8},
		{"invalid UTF-8 outside string", "{\"event\":\"e\"}\xc0", ErrInvalidUTF8},
		{"truncated UTF-8", "{\"event\":\"\xe2\x82\"}", ErrInvalidUTF8},
		{"overlong UTF-8", "{\"event\":\"\xc0\xaf\"}", ErrInvalidUTF8},
		{"UTF-8 surrogate", "{\"event\":\"\xed\xa0\x80\"}", ErrInvalidUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Frame
			err := DecodeFrame([]byte(tt.in), &f)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeFrame(%q) = %v, want %v", tt.in, err, tt.want)
			}
			if tt.want == ErrInvalidJSON && json.Valid([]byte(tt.in)) {
				t.Errorf("encoding/json accepts %q", tt.in)
			}
		})
	}
}

// nest returns a frame whose data is n nested arrays (and with obj, objects).
func nest(n int, obj bool) []byte {
	open, close := "[", "]"
	if obj {
		open, close = `{"k":`, "}"
	}
	var b strings.Builder
	b.WriteString(`{"event":"e","data":`)
	b.WriteString(strings.Repeat(open, n))
	b.WriteString("1")
	b.WriteString(strings.Repeat(close, n))
	b.WriteString("}")
	return []byte(b.String())
}

func TestDecodeFrame_Depth(t *testing.T) {
	// The frame object is level 1, so n nested containers in data make a
	// document n+1 deep. 64 levels are accepted, 65 are not.
	for _, obj := range []bool{false, true} {
		var f Frame
		if err := DecodeFrame(nest(63, obj), &f); err != nil {
			t.Errorf("64 levels (objects %v): %v", obj, err)
		}
		if err := DecodeFrame(nest(64, obj), &f); !errors.Is(err, ErrTooDeep) {
			t.Errorf("65 levels (objects %v): %v, want ErrTooDeep", obj, err)
		}
	}
	// Deep input must fail fast, not exhaust the stack.
	var f Frame
	if err := DecodeFrame(nest(1_000_000, false), &f); !errors.Is(err, ErrTooDeep) {
		t.Errorf("10^6 levels: %v, want ErrTooDeep", err)
	}
	deep := []byte(strings.Repeat("[", 100) + strings.Repeat("]", 100))
	if err := DecodeFrame(deep, &f); !errors.Is(err, ErrTooDeep) {
		t.Errorf("deep top-level array: %v, want ErrTooDeep", err)
	}
	auth := []byte(`{"channel":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`)
	var a AuthData
	if err := DecodeAuthData(auth, &a); !errors.Is(err, ErrTooDeep) {
		t.Errorf("deep auth data: %v, want ErrTooDeep", err)
	}
}

// TestDecodeFrame_Prefixes feeds every frame byte by byte: no strict prefix
// of a frame is a frame, and the whole frame is.
func TestDecodeFrame_Prefixes(t *testing.T) {
	frames := append([]string{
		`{"event":"e","channel":"c\u0041\"","data":[1.5e-3,-0,true,false,null,{"x":"\\"}]}`,
	}, pusherJSFrames...)
	for _, frame := range frames {
		var f Frame
		for i := 0; i < len(frame); i++ {
			if err := DecodeFrame([]byte(frame[:i]), &f); err == nil {
				t.Errorf("prefix %q of %q decoded", frame[:i], frame)
			}
		}
		if err := DecodeFrame([]byte(frame), &f); err != nil {
			t.Errorf("DecodeFrame(%q) = %v", frame, err)
		}
	}
}

func TestDecodeFrame_ResultAliasesInput(t *testing.T) {
	in := []byte(`{"event":"client-x","channel":"private-c","data":{"a":1}}`)
	var f Frame
	if err := DecodeFrame(in, &f); err != nil {
		t.Fatal(err)
	}
	// Without escapes, the decoder promises slices of the input.
	for name, s := range map[string][]byte{"Event": f.Event, "Channel": f.Channel, "Data": f.Data} {
		if &s[0] != &in[bytes.Index(in, s)] {
			t.Errorf("%s does not point into the input", name)
		}
	}
}

func TestDecodeAuthData(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want AuthData
	}{
		{"object", `{"auth":"k:s","channel":"private-a"}`,
			AuthData{Auth: []byte("k:s"), Channel: []byte("private-a")}},
		{"string form", `"{\"auth\":\"k:s\",\"channel\":\"private-a\"}"`,
			AuthData{Auth: []byte("k:s"), Channel: []byte("private-a")}},
		{"channel_data exact", `{"channel":"presence-a","auth":"k:s","channel_data":"{\"user_id\":10, \"user_info\":{\"name\":\"Zo\u00eb \\\"x\\\"\"}}"}`,
			AuthData{Channel: []byte("presence-a"), Auth: []byte("k:s"),
				ChannelData: []byte(`{"user_id":10, "user_info":{"name":"Zoë \"x\""}}`), HasChannelData: true}},
		{"empty channel_data is present", `{"channel":"presence-a","channel_data":""}`,
			AuthData{Channel: []byte("presence-a"), ChannelData: []byte(""), HasChannelData: true}},
		{"user_data", `{"auth":"k:s","user_data":"{\"id\":\"u1\"}"}`,
			AuthData{Auth: []byte("k:s"), UserData: []byte(`{"id":"u1"}`)}},
		{"unknown fields of any type", `{"x":[1,{"auth":1}],"channel":"c","shared_secret":null}`,
			AuthData{Channel: []byte("c")}},
		{"empty object", `{}`, AuthData{}},
		{"string form with spaces", `" { \"channel\" : \"c\" } "`, AuthData{Channel: []byte("c")}},
		{"escaped key", `{"ch\u0061nnel":"c"}`, AuthData{Channel: []byte("c")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a AuthData
			if err := DecodeAuthData([]byte(tt.in), &a); err != nil {
				t.Fatalf("DecodeAuthData(%q) = %v", tt.in, err)
			}
			assertAuthData(t, a, tt.want)
			checkAuthAgainstEncodingJSON(t, []byte(tt.in), &a)
		})
	}
}

func TestDecodeAuthData_Errors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"nil", ``, ErrFieldType},
		{"number", `1`, ErrFieldType},
		{"array", `[]`, ErrFieldType},
		{"null", `null`, ErrFieldType},
		{"string not object", `"channel"`, ErrFieldType},
		{"channel number", `{"channel":1}`, ErrFieldType},
		{"auth null", `{"auth":null}`, ErrFieldType},
		{"channel_data object", `{"channel_data":{"user_id":"u"}}`, ErrFieldType},
		{"user_data object", `{"user_data":{"id":"u"}}`, ErrFieldType},
		{"trailing garbage", `{"channel":"c"}x`, ErrInvalidJSON},
		{"unterminated", `{"channel":"c"`, ErrInvalidJSON},
		{"bad escape", `{"channel":"\q"}`, ErrInvalidJSON},
		{"string form trailing garbage", `"{\"channel\":\"c\"}x"`, ErrInvalidJSON},
		// Not produced by DecodeFrame, but DecodeAuthData is exported and
		// must not trust its input.
		{"lone quote", `"`, ErrInvalidJSON},
		{"unterminated string form", `"{}`, ErrInvalidJSON},
		{"string form then garbage", `"{}"x`, ErrInvalidJSON},
		{"control char in string form", "\"{\x01}\"", ErrInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a AuthData
			if err := DecodeAuthData([]byte(tt.in), &a); !errors.Is(err, tt.want) {
				t.Fatalf("DecodeAuthData(%q) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestStringValue(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{`"abc"`, "abc", true},
		{`""`, "", true},
		{`"a\"b\u00e9"`, `a"bé`, true},
		{`{}`, "", false},
		{`1`, "", false},
		{`"`, "", false},
		{`"abc`, "", false},
		{`"a"b"`, "", false},
		{`"\x"`, "", false},
	}
	for _, tt := range tests {
		got, ok := StringValue([]byte(tt.in))
		if ok != tt.ok || string(got) != tt.want {
			t.Errorf("StringValue(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// checkAgainstEncodingJSON is the differential oracle: a frame DecodeFrame
// accepts is valid JSON, and encoding/json finds the same event, channel and
// data in it. A map is used rather than a struct because encoding/json
// matches struct fields case-insensitively, which the Pusher protocol (and
// pusher-js) does not.
func checkAgainstEncodingJSON(t *testing.T, in []byte, f *Frame) {
	t.Helper()
	if !json.Valid(in) {
		t.Fatalf("DecodeFrame accepted %q, which encoding/json rejects", in)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(in, &m); err != nil {
		t.Fatalf("encoding/json cannot unmarshal %q: %v", in, err)
	}
	var event string
	if err := json.Unmarshal(m["event"], &event); err != nil || event != string(f.Event) {
		t.Fatalf("%q: encoding/json event %q (%v), DecodeFrame %q", in, event, err, f.Event)
	}
	raw, ok := m["channel"]
	if ok != (f.Channel != nil) {
		t.Fatalf("%q: encoding/json has channel %v, DecodeFrame %v", in, ok, f.Channel != nil)
	}
	if ok {
		var channel string
		if err := json.Unmarshal(raw, &channel); err != nil || channel != string(f.Channel) {
			t.Fatalf("%q: encoding/json channel %q (%v), DecodeFrame %q", in, channel, err, f.Channel)
		}
	}
	raw, ok = m["data"]
	if ok != (f.Data != nil) || !bytes.Equal(raw, f.Data) {
		t.Fatalf("%q: encoding/json data %q (%v), DecodeFrame %q", in, raw, ok, f.Data)
	}
	// Decoding into a struct agrees as well, unless a key like "EVENT" makes
	// encoding/json's case-insensitive field matching part ways with the
	// protocol.
	if hasFoldedDuplicate(m, "event") || hasFoldedDuplicate(m, "channel") {
		return
	}
	var s struct{ Event, Channel string }
	if err := json.Unmarshal(in, &s); err != nil {
		t.Fatalf("encoding/json struct unmarshal of %q: %v", in, err)
	}
	if s.Event != string(f.Event) || s.Channel != string(f.Channel) {
		t.Fatalf("%q: struct event %q channel %q, DecodeFrame %q %q", in, s.Event, s.Channel, f.Event, f.Channel)
	}
}

// hasFoldedDuplicate reports whether m has a key that equals name only
// case-insensitively, where encoding/json's struct matching and the protocol
// part ways.
func hasFoldedDuplicate(m map[string]json.RawMessage, name string) bool {
	for k := range m {
		if k != name && strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

func checkAuthAgainstEncodingJSON(t *testing.T, data []byte, a *AuthData) {
	t.Helper()
	if !json.Valid(data) {
		t.Fatalf("DecodeAuthData accepted %q, which encoding/json rejects", data)
	}
	if data[0] == '"' {
		var inner string
		if err := json.Unmarshal(data, &inner); err != nil {
			t.Fatal(err)
		}
		data = []byte(inner)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("encoding/json cannot unmarshal %q: %v", data, err)
	}
	for _, field := range []struct {
		name string
		got  []byte
	}{{"channel", a.Channel}, {"auth", a.Auth}, {"channel_data", a.ChannelData}, {"user_data", a.UserData}} {
		raw, ok := m[field.name]
		if ok != (field.got != nil) {
			t.Fatalf("%q: encoding/json has %s %v, DecodeAuthData %q", data, field.name, ok, field.got)
		}
		if !ok {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || s != string(field.got) {
			t.Fatalf("%q: encoding/json %s %q (%v), DecodeAuthData %q", data, field.name, s, err, field.got)
		}
	}
	if _, ok := m["channel_data"]; ok != a.HasChannelData {
		t.Fatalf("%q: HasChannelData %v, encoding/json %v", data, a.HasChannelData, ok)
	}
}

// checkDecode runs both decoders on in and checks every property that must
// hold for any input.
func checkDecode(t *testing.T, in []byte) {
	t.Helper()
	var f Frame
	err := DecodeFrame(in, &f)
	switch {
	case err == nil:
		checkAgainstEncodingJSON(t, in, &f)
		if len(f.Event) == 0 {
			t.Fatalf("%q: empty event accepted", in)
		}
	case errors.Is(err, ErrInvalidJSON):
		if json.Valid(in) {
			t.Fatalf("DecodeFrame(%q) = ErrInvalidJSON, but encoding/json accepts it", in)
		}
	case errors.Is(err, ErrInvalidUTF8):
		if utf8.Valid(in) {
			t.Fatalf("DecodeFrame(%q) = ErrInvalidUTF8 on valid UTF-8", in)
		}
	case errors.Is(err, ErrNoEvent):
		// Reported only after the whole frame was scanned.
		if !json.Valid(in) {
			t.Fatalf("DecodeFrame(%q) = ErrNoEvent, but encoding/json rejects it", in)
		}
	case errors.Is(err, ErrNotObject):
		if rest := bytes.TrimLeft(in, " \t\r\n"); len(rest) > 0 && rest[0] == '{' {
			t.Fatalf("DecodeFrame(%q) = ErrNotObject for an object", in)
		}
	case errors.Is(err, ErrFieldType), errors.Is(err, ErrTooDeep):
	default:
		t.Fatalf("DecodeFrame(%q) = unexpected error %v", in, err)
	}
	if f.Data == nil {
		return
	}
	var a AuthData
	if DecodeAuthData(f.Data, &a) == nil {
		checkAuthAgainstEncodingJSON(t, f.Data, &a)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range pusherJSFrames {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`{"event":"pusher:subscribe","data":"{\"auth\":\"k:s\",\"channel_data\":\"{\\\"user_id\\\":1}\",\"channel\":\"presence-x\"}"}`,
		`{"\u0065vent":"e","channel":"\ud83d\ude42","data":[-0.5e10,"\u2028"]}`,
		`{"event":"e","data":{"a":{"b":{"c":[[[[[[[[1]]]]]]]]}}}}`,
		`[1,2]`,
		`{"event":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkDecode(t, in)
		// DecodeAuthData is exported; it must survive any input as well.
		// Its callers hand it data from a frame that passed the UTF-8
		// check, so only such input is compared with encoding/json (which
		// replaces invalid bytes with U+FFFD).
		var a AuthData
		if DecodeAuthData(in, &a) == nil && utf8.Valid(in) {
			checkAuthAgainstEncodingJSON(t, in, &a)
		}
	})
}

var (
	benchClientEvent = []byte(`{"event":"client-typing","data":{"typing":true,"at":1700000000},"channel":"private-foobar"}`)
	benchSubscribe   = []byte(`{"event":"pusher:subscribe","data":{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4","channel":"private-foobar"}}`)
)

func TestDecode_NoAllocs(t *testing.T) {
	var f Frame
	var a AuthData
	tests := map[string]func(){
		"client event": func() {
			if DecodeFrame(benchClientEvent, &f) != nil {
				panic("decode")
			}
		},
		"subscribe": func() {
			if DecodeFrame(benchSubscribe, &f) != nil || DecodeAuthData(f.Data, &a) != nil {
				panic("decode")
			}
		},
	}
	for name, fn := range tests {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs per run, want 0", name, n)
		}
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	b.Run("client_event", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchClientEvent)))
		var f Frame
		for b.Loop() {
			if err := DecodeFrame(benchClientEvent, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("subscribe", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchSubscribe)))
		var f Frame
		var a AuthData
		for b.Loop() {
			if err := DecodeFrame(benchSubscribe, &f); err != nil {
				b.Fatal(err)
			}
			if err := DecodeAuthData(f.Data, &a); err != nil {
				b.Fatal(err)
			}
		}
	})
}
