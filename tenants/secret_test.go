package tenants

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"text/template"
)

const canary = "s3cr3t-CANARY-7ad3773142a6692b25b8"

// TestSecret_SEC3_Redaction: every way of printing, logging or marshalling a
// Secret, alone or inside the structs that carry it, shows "[redacted]" and
// never the value; only Reveal gives it.
func TestSecret_SEC3_Redaction(t *testing.T) {
	s := NewSecret(canary)
	if s.Reveal() != canary {
		t.Fatalf("Reveal = %q, want the value", s.Reveal())
	}
	key := Key{Key: "k1", Secret: s}
	app := &App{ID: "1", Name: "n", Enabled: true, Keys: []Key{key}}
	cfg := AppConfig{ID: "1", Key: "k1", Secret: s}
	values := map[string]any{
		"secret":     s,
		"*secret":    &s,
		"key":        key,
		"*key":       &key,
		"app":        app,
		"app value":  *app,
		"config":     cfg,
		"[]secret":   []Secret{s, s},
		"map":        map[string]Secret{"a": s},
		"map key":    map[Secret]int{s: 1},
		"any struct": struct{ Any any }{s},
		"nested":     struct{ Inner struct{ S Secret } }{struct{ S Secret }{s}},
	}
	check := func(t *testing.T, what, out string) {
		t.Helper()
		if strings.Contains(out, canary) || strings.Contains(out, canary[:12]) {
			t.Errorf("%s reveals the secret: %s", what, out)
		}
	}

	t.Run("fmt", func(t *testing.T) {
		for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10.3s", "%-20v", "%T"} {
			got := fmt.Sprintf(verb, s)
			check(t, verb, got)
			if verb != "%T" && !strings.Contains(got, "[redacted]") {
				t.Errorf("Sprintf(%s) = %q, want [redacted]", verb, got)
			}
			for name, v := range values {
				check(t, verb+" of "+name, fmt.Sprintf(verb, v))
			}
		}
		check(t, "Sprint", fmt.Sprint(s, &s, key, app))
		check(t, "Sprintln", fmt.Sprintln(s, key, app))
		check(t, "String", s.String())
		check(t, "GoString", s.GoString())
		check(t, "Errorf", fmt.Errorf("bad key %v: %w", key, errors.New(s.String())).Error())
	})

	t.Run("slog", func(t *testing.T) {
		var buf bytes.Buffer
		for name, h := range map[string]slog.Handler{
			"json": slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
			"text": slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}),
		} {
			buf.Reset()
			log := slog.New(h).With("app_secret", s)
			log.Info("msg", "secret", s, "ptr", &s, "key", key, "app", app, "config", cfg,
				slog.Group("g", "secret", s), slog.Any("any", s))
			for vn, v := range values {
				log.Debug("value", vn, v)
			}
			out := buf.String()
			check(t, name+" handler", out)
			if !strings.Contains(out, "[redacted]") {
				t.Errorf("%s handler output has no [redacted]: %s", name, out)
			}
			if name == "json" {
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					if !json.Valid([]byte(line)) {
						t.Errorf("json handler line is not JSON: %s", line)
					}
				}
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		for name, v := range values {
			b, err := json.Marshal(v)
			if err != nil {
				t.Errorf("json.Marshal(%s): %v", name, err)
				continue
			}
			check(t, "json.Marshal of "+name, string(b))
		}
		b, err := json.Marshal(key)
		if err != nil || string(b) != `{"key":"k1","secret":"[redacted]"}` {
			t.Errorf("json.Marshal(Key) = %s, %v", b, err)
		}
		b, _ = json.MarshalIndent(app, "", " ")
		check(t, "MarshalIndent", string(b))
	})

	t.Run("text", func(t *testing.T) {
		b, err := s.MarshalText()
		if err != nil || string(b) != "[redacted]" {
			t.Errorf("MarshalText = %s, %v", b, err)
		}
		x, err := xml.Marshal(key)
		if err != nil {
			t.Fatal(err)
		}
		check(t, "xml.Marshal", string(x))
		var tb strings.Builder
		if err := template.Must(template.New("").Parse("{{.}} {{.Keys}} {{range .Keys}}{{.Secret}}{{end}}")).Execute(&tb, app); err != nil {
			t.Fatal(err)
		}
		check(t, "text/template", tb.String())
	})
}

func TestSecret_Unmarshal(t *testing.T) {
	var k Key
	if err := json.Unmarshal([]byte(`{"key":"k1","secret":"`+canary+`"}`), &k); err != nil {
		t.Fatal(err)
	}
	if k.Secret.Reveal() != canary {
		t.Errorf("unmarshalled secret %q", k.Secret.Reveal())
	}
	for _, bad := range []string{`{"secret":1}`, `{"secret":null}`, `{"secret":{"value":"x"}}`, `{"secret":["x"]}`} {
		var k Key
		err := json.Unmarshal([]byte(bad), &k)
		if bad == `{"secret":null}` {
			// null leaves the field unset, like any JSON null.
			if err != nil || !k.Secret.IsZero() {
				t.Errorf("%s: %v, %q", bad, err, k.Secret.Reveal())
			}
			continue
		}
		if err == nil {
			t.Errorf("%s accepted: %q", bad, k.Secret.Reveal())
		}
	}
	var s Secret
	if err := s.UnmarshalText([]byte(canary)); err != nil || s.Reveal() != canary {
		t.Errorf("UnmarshalText: %v, %q", err, s.Reveal())
	}
	if !(Secret{}).IsZero() || NewSecret("x").IsZero() {
		t.Error("IsZero")
	}
	// A secret survives a marshal round trip only through Reveal: the
	// marshalled form is the redaction.
	b, _ := json.Marshal(NewSecret(canary))
	var back Secret
	if err := json.Unmarshal(b, &back); err != nil || back.Reveal() != "[redacted]" {
		t.Errorf("round trip gives %q, %v", back.Reveal(), err)
	}
}

// fmt cannot call methods on unexported fields, so it prints them raw; the
// secret must still not appear.
func TestSecret_SEC3_UnexportedField(t *testing.T) {
	holder := struct{ s Secret }{NewSecret(canary)}
	for _, verb := range []string{"%v", "%+v", "%#v"} {
		if got := fmt.Sprintf(verb, holder); strings.Contains(got, canary) {
			t.Errorf("Sprintf(%s) of a struct with an unexported Secret leaks it: %s", verb, got)
		}
	}
}
