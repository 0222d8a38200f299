package protocol

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// wantDecoded is what a JSON decoder must read back from AppendString(s):
// s itself, with every byte of invalid UTF-8 replaced by U+FFFD.
func wantDecoded(s string) string { return string([]rune(s)) }

var encodeStrings = []string{
	"",
	"plain",
	`say "hi"`,
	`back\slash \\ \"`,
	"\x00\x01\x02\x07\x08\t\n\v\f\r\x1b\x1f",
	"del \x7f",
	"line\u2028sep\u2029para",
	"emoji 🙂 and ZWJ 👩‍👩‍👧",
	"Zoë Ünicode",
	"already escaped \\u2028 text",
	"html <script>&amp;</script>",
	"literal U+FFFD: \ufffd",
	"bad \xff byte",
	"truncated \xe2\x82",
	"overlong \xc0\xaf",
	"surrogate \xed\xa0\x80",
	"\xf4\x90\x80\x80 above U+10FFFF",
	"\x80",
	"a\x00b\"c\\d\u2028e\xfff",
}

func TestAppendString_RoundTrip(t *testing.T) {
	for _, s := range encodeStrings {
		checkAppendString(t, s)
	}
}

func checkAppendString(t *testing.T, s string) {
	t.Helper()
	prefix := []byte("prefix")
	out := AppendString(prefix, s)
	if !bytes.HasPrefix(out, []byte("prefix")) {
		t.Fatalf("AppendString(%q) lost dst: %q", s, out)
	}
	lit := out[len("prefix"):]
	if !utf8.Valid(lit) {
		t.Fatalf("AppendString(%q) = %q, not valid UTF-8", s, lit)
	}
	if !json.Valid(lit) {
		t.Fatalf("AppendString(%q) = %q, not valid JSON", s, lit)
	}
	var got string
	if err := json.Unmarshal(lit, &got); err != nil {
		t.Fatalf("AppendString(%q) = %q: %v", s, lit, err)
	}
	if got != wantDecoded(s) {
		t.Fatalf("AppendString(%q) = %q decodes to %q, want %q", s, lit, got, wantDecoded(s))
	}
	// U+2028/9 are escaped for JavaScript consumers; no raw control byte
	// survives.
	if bytes.Contains(lit, []byte("\u2028")) || bytes.Contains(lit, []byte("\u2029")) {
		t.Fatalf("AppendString(%q) = %q keeps a raw U+2028/U+2029", s, lit)
	}
	for _, c := range lit {
		if c < 0x20 {
			t.Fatalf("AppendString(%q) = %q keeps raw control byte %#x", s, lit, c)
		}
	}
	// Our own decoder must agree, too.
	if v, ok := StringValue(lit); !ok || string(v) != got {
		t.Fatalf("StringValue(AppendString(%q)) = %q, %v; want %q", s, v, ok, got)
	}
}

func TestAppendString_Exact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"abc", `"abc"`},
		{`"`, `"\""`},
		{`\`, `"\\"`},
		{"\n\r\t", `"\n\r\t"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"🙂/", "\"🙂/\""},
	}
	for _, tt := range tests {
		if got := string(AppendString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range encodeStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAppendString(t, s)
		// The byte-slice path used for event data must be identical.
		if a, b := AppendString(nil, s), appendStringBytes(nil, []byte(s)); !bytes.Equal(a, b) {
			t.Fatalf("appendStringBytes(%q) = %q, AppendString = %q", s, b, a)
		}
	})
}

type serverFrame struct {
	Event   string  `json:"event"`
	Channel *string `json:"channel"`
	Data    string  `json:"data"`
	UserID  *string `json:"user_id"`
}

func TestAppendEvent_RoundTrip(t *testing.T) {
	for _, s := range encodeStrings {
		for _, channel := range []string{"", "presence-" + s} {
			for _, user := range []string{"", "u" + s} {
				out := AppendEvent([]byte("x"), "ev"+s, channel, []byte(s), user)
				if out[0] != 'x' {
					t.Fatalf("AppendEvent lost dst")
				}
				out = out[1:]
				var got serverFrame
				dec := json.NewDecoder(bytes.NewReader(out))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&got); err != nil {
					t.Fatalf("AppendEvent(%q) = %q: %v", s, out, err)
				}
				if got.Event != wantDecoded("ev"+s) || got.Data != wantDecoded(s) {
					t.Errorf("AppendEvent(%q): event %q data %q", s, got.Event, got.Data)
				}
				if (channel == "") != (got.Channel == nil) || channel != "" && *got.Channel != wantDecoded(channel) {
					t.Errorf("AppendEvent(%q): channel %v, want %q", s, got.Channel, channel)
				}
				if (user == "") != (got.UserID == nil) || user != "" && *got.UserID != wantDecoded(user) {
					t.Errorf("AppendEvent(%q): user_id %v, want %q", s, got.UserID, user)
				}
				// The gateway's own decoder reads server frames too (tests,
				// bench tool): it must agree.
				var f Frame
				if err := DecodeFrame(out, &f); err != nil {
					t.Fatalf("DecodeFrame(AppendEvent(%q)) = %v", s, err)
				}
				if v, ok := StringValue(f.Data); !ok || string(v) != wantDecoded(s) {
					t.Errorf("DecodeFrame(AppendEvent(%q)).Data = %q", s, f.Data)
				}
			}
		}
	}
}

// TestAppendEvent_PusherJSFrames reproduces, byte for byte, server frames that
// pusher-js 8.6.0 accepted (vector pusherjs_server_frames_accepted).
func TestAppendEvent_PusherJSFrames(t *testing.T) {
	tests := []struct {
		event, channel, data, userID string
		want                         string
	}{
		{"ev-string", "my-channel", `{"hello":"world"}`, "",
			`{"event":"ev-string","channel":"my-channel","data":"{\"hello\":\"world\"}"}`},
		{"ev-text", "my-channel", `not json`, "",
			`{"event":"ev-text","channel":"my-channel","data":"not json"}`},
		{"client-moved", "presence-foobar", `{"x":1}`, "u2",
			`{"event":"client-moved","channel":"presence-foobar","data":"{\"x\":1}","user_id":"u2"}`},
		{"pusher_internal:member_added", "presence-foobar", `{"user_id":"u2","user_info":{"name":"Bob"}}`, "",
			`{"event":"pusher_internal:member_added","channel":"presence-foobar","data":"{\"user_id\":\"u2\",\"user_info\":{\"name\":\"Bob\"}}"}`},
		{"notify", "#server-to-user-u1", `{"n":1}`, "",
			`{"event":"notify","channel":"#server-to-user-u1","data":"{\"n\":1}"}`},
		{"pusher_internal:watchlist_events", "", `{"events":[{"name":"online","user_ids":["u5","u6"]}]}`, "",
			`{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"u5\",\"u6\"]}]}"}`},
		{"secret-event", "private-encrypted-foobar", `{"nonce":"QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZX","ciphertext":"YnZKlfwbxYqSiMHh5LYAPZw5S9pIl2OLUKMD1kF3Ye8D4BE="}`, "",
			`{"event":"secret-event","channel":"private-encrypted-foobar","data":"{\"nonce\":\"QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZX\",\"ciphertext\":\"YnZKlfwbxYqSiMHh5LYAPZw5S9pIl2OLUKMD1kF3Ye8D4BE=\"}"}`},
	}
	for _, tt := range tests {
		if got := string(AppendEvent(nil, tt.event, tt.channel, []byte(tt.data), tt.userID)); got != tt.want {
			t.Errorf("AppendEvent(%q)\n got %s\nwant %s", tt.event, got, tt.want)
		}
	}
}

func TestAppendError(t *testing.T) {
	// Byte for byte the pusher:error frame of pusherjs_server_frames_accepted.
	const msg = "Client event rejected - only supported on private and presence channels"
	want := `{"event":"pusher:error","data":{"code":null,"message":"Client event rejected - only supported on private and presence channels"}}`
	if got := string(AppendError(nil, 0, msg)); got != want {
		t.Errorf("AppendError(0)\n got %s\nwant %s", got, want)
	}
	for _, code := range []int{0, CodeAppNotFound, CodeClientEventRateLimit, CodeWatchlistLimit, -1} {
		for _, m := range encodeStrings {
			out := AppendError([]byte("{}"), code, m)[2:]
			var got struct {
				Event string `json:"event"`
				Data  struct {
					Code    *int    `json:"code"`
					Message *string `json:"message"`
				} `json:"data"`
			}
			dec := json.NewDecoder(bytes.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("AppendError(%d, %q) = %s: %v", code, m, out, err)
			}
			if got.Event != "pusher:error" || got.Data.Message == nil || *got.Data.Message != wantDecoded(m) {
				t.Errorf("AppendError(%d, %q) = %s", code, m, out)
			}
			if code == 0 && got.Data.Code != nil || code != 0 && (got.Data.Code == nil || *got.Data.Code != code) {
				t.Errorf("AppendError(%d) code = %v", code, got.Data.Code)
			}
		}
	}
}

func TestAppendEvent_NoAllocs(t *testing.T) {
	data := benchEventData()
	buf := make([]byte, 0, 512)
	n := testing.AllocsPerRun(100, func() {
		buf = AppendEvent(buf[:0], "my-event", "presence-room-1", data, "user-42")
	})
	if n != 0 {
		t.Errorf("AppendEvent into a reused buffer: %v allocs, want 0", n)
	}
	n = testing.AllocsPerRun(100, func() {
		buf = AppendError(buf[:0], CodeClientEventRateLimit, "too many client events")
	})
	if n != 0 {
		t.Errorf("AppendError into a reused buffer: %v allocs, want 0", n)
	}
}

// benchEventData is 100 bytes of typical JSON event data, with the quotes
// that must be escaped.
func benchEventData() []byte {
	d := `{"message":"hello world","user":{"id":"u-123","name":"Zoë"},"seq":42,"tags":["a","b"],"ok":true}`
	d += strings.Repeat(" ", 100-len(d))
	return []byte(d)
}

func BenchmarkAppendEvent(b *testing.B) {
	data := benchEventData()
	if len(data) != 100 {
		b.Fatalf("data is %d bytes", len(data))
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		buf = AppendEvent(buf[:0], "my-event", "private-channel", data, "")
	}
}

// TestAppendDurableEvent checks the durable frame is AppendEvent's frame
// plus a "seq" field that the decoder reads back, and that the
// subscription_succeeded frame carries epoch and seq only when durable.
func TestAppendDurableEvent(t *testing.T) {
	data := benchEventData()
	for _, seq := range []uint64{1, 42, 1 << 53} {
		out := AppendDurableEvent(nil, "ev", "durable-x", data, "u1", seq)
		plain := AppendEvent(nil, "ev", "durable-x", data, "u1")
		if !bytes.HasPrefix(out, plain[:len(plain)-1]) {
			t.Fatalf("durable frame %q does not extend %q", out, plain)
		}
		var got struct {
			Event, Channel, Data, UserID string `json:"-"`
			Seq                          uint64 `json:"seq"`
		}
		if err := json.Unmarshal(out, &got); err != nil || got.Seq != seq {
			t.Fatalf("frame %q: seq %d, err %v; want %d", out, got.Seq, err, seq)
		}
		var f Frame
		if err := DecodeFrame(out, &f); err != nil || f.Seq != seq || string(f.Channel) != "durable-x" || f.Epoch != nil {
			t.Errorf("DecodeFrame(%q) = seq %d channel %q, %v", out, f.Seq, f.Channel, err)
		}
	}
	var f Frame
	if err := DecodeFrame(AppendSubscribed(nil, "c", []byte("{}"), true, "e1", 7), &f); err != nil || string(f.Epoch) != "e1" || f.Seq != 7 {
		t.Errorf("DecodeFrame(subscribed) = epoch %q seq %d, %v", f.Epoch, f.Seq, err)
	}
	if got, want := string(AppendSubscribed(nil, "c", []byte("{}"), true, "e1", 7)),
		`{"event":"pusher_internal:subscription_succeeded","channel":"c","data":"{}","epoch":"e1","seq":7}`; got != want {
		t.Errorf("durable subscribed frame\n got %s\nwant %s", got, want)
	}
	if got, want := string(AppendSubscribed(nil, "c", []byte("{}"), false, "", 0)),
		`{"event":"pusher_internal:subscription_succeeded","channel":"c","data":"{}"}`; got != want {
		t.Errorf("ephemeral subscribed frame\n got %s\nwant %s", got, want)
	}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = AppendDurableEvent(buf[:0], "ev", "durable-x", data, "", 99) }); n != 0 {
		t.Errorf("AppendDurableEvent into a reused buffer: %v allocs, want 0", n)
	}
}

func TestDecodeFrame_Seq(t *testing.T) {
	for in, want := range map[string]uint64{
		`{"event":"e","seq":12}`:                   12,
		`{"event":"e","seq":-1}`:                   0,
		`{"event":"e","seq":1.5}`:                  0,
		`{"event":"e","seq":"3"}`:                  0,
		`{"event":"e","seq":99999999999999999999}`: 0,
		`{"event":"e"}`:                            0,
	} {
		var f Frame
		if err := DecodeFrame([]byte(in), &f); err != nil || f.Seq != want {
			t.Errorf("DecodeFrame(%s): seq %d, %v; want %d", in, f.Seq, err, want)
		}
	}
}
