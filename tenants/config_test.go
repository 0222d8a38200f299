package tenants

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseAppConfigs_Defaults(t *testing.T) {
	apps, _, err := ParseAppConfigs([]byte(`[
		{"id":"3","key":"278d425bdf160c739803","secret":"7ad3773142a6692b25b8"},
		{"id":"app2","key":"K_2-x","secret":"s2","name":"Second","enabled":false,
		 "settings":{"limits":{"max_connections":50,"max_payload_bytes":2048},"features":{"client_events":false}}}
	]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 {
		t.Fatalf("%d apps", len(apps))
	}
	a := apps[0]
	if a.ID != "3" || a.Name != "3" || !a.Enabled {
		t.Errorf("app 0: id %q name %q enabled %v; want name defaulted to the id, enabled", a.ID, a.Name, a.Enabled)
	}
	if len(a.Keys) != 1 || a.Keys[0].Key != "278d425bdf160c739803" || a.Keys[0].Secret.Reveal() != "7ad3773142a6692b25b8" {
		t.Errorf("app 0 keys: %+v", a.Keys)
	}
	want := Limits{
		MaxConnections:           0,
		MaxPayloadBytes:          DefaultMaxPayloadBytes,
		MaxChannelsPerEvent:      DefaultMaxChannelsPerEvent,
		MaxBatchEvents:           DefaultMaxBatchEvents,
		ClientEventsPerSecond:    DefaultClientEventsPerSecond,
		MaxChannelsPerConnection: DefaultMaxChannelsPerConnection,
		MaxPresenceMembers:       DefaultMaxPresenceMembers,
		MaxConnectionsPerUser:    DefaultMaxConnectionsPerUser,
		SubscriptionsPerSecond:   DefaultSubscriptionsPerSecond,
	}
	if a.Settings.Limits != want {
		t.Errorf("app 0 limits %+v, want %+v", a.Settings.Limits, want)
	}
	if a.Settings.Features.ClientEvents == nil || !a.Settings.Features.ClientEventsEnabled() {
		t.Errorf("app 0: client events not defaulted to on")
	}
	// Documented hosted defaults (reference §1.3, §4.11, §8.2).
	if DefaultMaxPayloadBytes != 10240 || DefaultMaxChannelsPerEvent != 100 || DefaultMaxBatchEvents != 10 ||
		DefaultClientEventsPerSecond != 10 || DefaultMaxPresenceMembers != 100 {
		t.Errorf("a default drifted from the documented hosted value")
	}

	b := apps[1]
	if b.Name != "Second" || b.Enabled {
		t.Errorf("app 1: name %q enabled %v", b.Name, b.Enabled)
	}
	if b.Settings.Limits.MaxConnections != 50 || b.Settings.Limits.MaxPayloadBytes != 2048 ||
		b.Settings.Limits.MaxBatchEvents != DefaultMaxBatchEvents {
		t.Errorf("app 1 limits %+v", b.Settings.Limits)
	}
	if b.Settings.Features.ClientEventsEnabled() {
		t.Errorf("app 1: client events on, configured off")
	}
}

func TestParseAppConfigs_Errors(t *testing.T) {
	valid := `"id":"1","key":"k1","secret":"s1"`
	tests := []struct {
		name    string
		in      string
		mention []string // substrings the error must contain
		invalid bool     // wraps ErrInvalid
	}{
		{"not JSON", `{`, []string{"JSON array"}, false},
		{"object, not array", `{` + valid + `}`, []string{"JSON array"}, false},
		{"unknown top-level field", `[{` + valid + `,"secrt":"x"}]`, []string{`"secrt"`}, false},
		{"unknown limit", `[{` + valid + `,"settings":{"limits":{"max_conections":5}}}]`, []string{`"max_conections"`}, false},
		{"unknown feature", `[{` + valid + `,"settings":{"features":{"webhooks":true}}}]`, []string{`"webhooks"`}, false},
		{"secret not a string", `[{"id":"1","key":"k1","secret":123}]`, []string{"secret"}, false},
		{"limit not a number", `[{` + valid + `,"settings":{"limits":{"max_connections":"5"}}}]`, []string{"max_connections"}, false},
		{"trailing data", `[{` + valid + `}] [{"id":"2","key":"k2","secret":"s2"}]`, []string{"after"}, false},
		{"missing id", `[{"key":"k1","secret":"s1"}]`, []string{"apps[0]", "id"}, true},
		{"id with upper case", `[{"id":"App","key":"k1","secret":"s1"}]`, []string{"apps[0]", "id", `"App"`}, true},
		{"id with colon", `[{"id":"a:b","key":"k1","secret":"s1"}]`, []string{"id"}, true},
		{"id too long", `[{"id":"` + strings.Repeat("1", 33) + `","key":"k1","secret":"s1"}]`, []string{"id"}, true},
		{"missing key", `[{"id":"1","secret":"s1"}]`, []string{"key"}, true},
		{"key with space", `[{"id":"1","key":"k 1","secret":"s1"}]`, []string{"key", `"k 1"`}, true},
		{"key with colon", `[{"id":"1","key":"k:1","secret":"s1"}]`, []string{"key"}, true},
		{"key too long", `[{"id":"1","key":"` + strings.Repeat("k", 65) + `","secret":"s1"}]`, []string{"key"}, true},
		{"missing secret", `[{"id":"1","key":"k1"}]`, []string{"secret"}, true},
		{"empty secret", `[{"id":"1","key":"k1","secret":""}]`, []string{"secret"}, true},
		{"secret too long", `[{"id":"1","key":"k1","secret":"` + strings.Repeat("s", 257) + `"}]`, []string{"secret"}, true},
		{"name too long", `[{` + valid + `,"name":"` + strings.Repeat("n", 201) + `"}]`, []string{"name"}, true},
		{"negative limit", `[{` + valid + `,"settings":{"limits":{"max_connections":-1}}}]`, []string{"settings.limits.max_connections"}, true},
		{"negative payload", `[{` + valid + `,"settings":{"limits":{"max_payload_bytes":-5}}}]`, []string{"settings.limits.max_payload_bytes"}, true},
		{"limit over max", `[{` + valid + `,"settings":{"limits":{"max_batch_events":1001}}}]`, []string{"settings.limits.max_batch_events"}, true},
		{"durable pattern with a space", `[{` + valid + `,"settings":{"durable":[{"pattern":"a b"}]}}]`, []string{"settings.durable[0].pattern"}, true},
		{"durable empty pattern", `[{` + valid + `,"settings":{"durable":[{"pattern":""}]}}]`, []string{"settings.durable[0].pattern"}, true},
		{"durable max_events over max", `[{` + valid + `,"settings":{"durable":[{"pattern":"a-*","max_events":100001}]}}]`, []string{"settings.durable[0].max_events"}, true},
		{"durable max_age too long", `[{` + valid + `,"settings":{"durable":[{"pattern":"a-*","max_age":"721h"}]}}]`, []string{"settings.durable[0].max_age"}, true},
		{"durable max_age a number", `[{` + valid + `,"settings":{"durable":[{"pattern":"a-*","max_age":60}]}}]`, []string{"24h"}, false},
		{"durable max_age no unit", `[{` + valid + `,"settings":{"durable":[{"pattern":"a-*","max_age":"60"}]}}]`, []string{"unit"}, false},
		{"durable unknown field", `[{` + valid + `,"settings":{"durable":[{"pattern":"a-*","keep":5}]}}]`, []string{`"keep"`}, false},
		{"second entry invalid", `[{` + valid + `},{"id":"2","key":"k2","secret":""}]`, []string{"apps[1]", "secret"}, true},
		{"duplicate id", `[{` + valid + `},{"id":"1","key":"k2","secret":"s2"}]`, []string{"apps[1]", "id", `"1"`, "twice"}, false},
		{"duplicate key", `[{` + valid + `},{"id":"2","key":"k1","secret":"s2"}]`, []string{"apps[1]", "key", `"k1"`, "twice"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps, _, err := ParseAppConfigs([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseAppConfigs accepted %s: %+v", tt.in, apps)
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if errors.Is(err, ErrInvalid) != tt.invalid {
				t.Errorf("errors.Is(%v, ErrInvalid) = %v, want %v", err, !tt.invalid, tt.invalid)
			}
		})
	}
}

// A secret in a rejected config never appears in the error (SEC-3).
func TestParseAppConfigs_ErrorsDoNotRevealSecrets(t *testing.T) {
	const canary = "canary-secret-c4n4ry"
	for _, in := range []string{
		`[{"id":"1","key":"k1","secret":"` + canary + strings.Repeat("x", 300) + `"}]`,
		`[{"id":"BAD","key":"k1","secret":"` + canary + `"}]`,
		`[{"id":"1","key":"k 1","secret":"` + canary + `"}]`,
		`[{"id":"1","key":"k1","secret":"` + canary + `","settings":{"limits":{"max_connections":-1}}}]`,
		`[{"id":"1","key":"k1","secret":"` + canary + `"},{"id":"1","key":"k2","secret":"` + canary + `"}]`,
		`[{"id":"1","key":"k1","secret":"` + canary + `","x":1}]`,
	} {
		_, _, err := ParseAppConfigs([]byte(in))
		if err == nil {
			t.Fatalf("accepted %s", in)
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("error reveals the secret: %v", err)
		}
	}
}

func TestParseAppConfigs_Empty(t *testing.T) {
	for _, in := range []string{`[]`, ` [ ] `, "[]\n"} {
		apps, _, err := ParseAppConfigs([]byte(in))
		if err != nil || len(apps) != 0 {
			t.Errorf("ParseAppConfigs(%q) = %v, %v", in, apps, err)
		}
	}
}

// LimitSpecs and Limits.At describe every field of Limits, by its JSON
// name, so that defaults and plan ceilings miss none.
func TestLimitSpecsCoverLimits(t *testing.T) {
	var l Limits
	typ := reflect.TypeOf(l)
	if typ.NumField() != len(LimitSpecs) {
		t.Fatalf("Limits has %d fields, LimitSpecs %d", typ.NumField(), len(LimitSpecs))
	}
	v := reflect.ValueOf(&l).Elem()
	for i, spec := range LimitSpecs {
		f := typ.Field(i)
		if tag := strings.Split(f.Tag.Get("json"), ",")[0]; tag != spec.Name {
			t.Errorf("LimitSpecs[%d] is %q, field %d is %q", i, spec.Name, i, tag)
		}
		if l.At(i) != v.Field(i).Addr().Interface().(*int) {
			t.Errorf("At(%d) does not point to %s", i, f.Name)
		}
	}
}

func TestDurableRules(t *testing.T) {
	apps, _, err := ParseAppConfigs([]byte(`[{"id":"1","key":"k1","secret":"s1","settings":{"durable":[
		{"pattern":"orders-*","max_events":50},
		{"pattern":"*-log","max_age":"90m"},
		{"pattern":"orders-archive"}]}}]`))
	if err != nil {
		t.Fatal(err)
	}
	s := &apps[0].Settings
	for _, tc := range []struct {
		channel string
		want    int // index of the rule, -1 for none
	}{{"orders-1", 0}, {"orders-archive", 0}, {"audit-log", 1}, {"private-orders-1", -1}, {"orders", -1}} {
		r, ok := s.DurableFor(tc.channel)
		switch {
		case tc.want < 0 && ok:
			t.Errorf("%s: durable by %+v, want ephemeral", tc.channel, r)
		case tc.want >= 0 && (!ok || r != &s.Durable[tc.want]):
			t.Errorf("%s: rule %+v, want rule %d", tc.channel, r, tc.want)
		}
	}
	// Defaults fill in, and the JSON form round-trips.
	if r := s.Durable[1]; r.MaxEvents != DefaultDurableMaxEvents || time.Duration(r.MaxAge) != 90*time.Minute {
		t.Errorf("rule 1 = %+v", r)
	}
	if r := s.Durable[0]; r.MaxEvents != 50 || time.Duration(r.MaxAge) != DefaultDurableMaxAge {
		t.Errorf("rule 0 = %+v", r)
	}
	b, err := json.Marshal(s.Durable[1])
	if err != nil || string(b) != `{"pattern":"*-log","max_events":1000,"max_age":"1h30m0s"}` {
		t.Errorf("rule 1 as JSON: %s, %v", b, err)
	}
	if _, _, err := ParseAppConfigs([]byte(`[{"id":"1","key":"k1","secret":"s1","settings":{"durable":[` + strings.Repeat(`{"pattern":"a"},`, MaxDurableRules) + `{"pattern":"b"}]}}]`)); err == nil || !strings.Contains(err.Error(), "settings.durable") {
		t.Errorf("%d rules accepted: %v", MaxDurableRules+1, err)
	}
}
