package main

// Docker is not available where the tests run, so compose.yaml (the
// multi-node shape) and deploy/nginx.conf are checked statically: the
// services exist and are wired in the right order, and every HERALD_*
// variable the file sets is one that Herald actually reads (a misspelt
// variable would otherwise be silently ignored).

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string              `yaml:"image"`
	Build       any                 `yaml:"build"`
	Command     any                 `yaml:"command"`
	Environment any                 `yaml:"environment"` // a map, or a list of KEY=VALUE
	DependsOn   any                 `yaml:"depends_on"`  // a list of names, or a map name → {condition}
	Ports       []string            `yaml:"ports"`
	Volumes     []string            `yaml:"volumes"`
	Healthcheck *composeHealthcheck `yaml:"healthcheck"`
	Restart     string              `yaml:"restart"`
}

type composeHealthcheck struct {
	Test any `yaml:"test"`
}

// env returns the service's environment as a map, whichever form it has.
func (s composeService) env(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch e := s.Environment.(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			if v == nil {
				out[k] = ""
			} else {
				out[k] = fmt.Sprint(v)
			}
		}
	case []any:
		for _, item := range e {
			k, v, _ := strings.Cut(fmt.Sprint(item), "=")
			out[k] = v
		}
	default:
		t.Fatalf("environment of unexpected shape %T", e)
	}
	return out
}

// dependsOn returns name → condition ("service_started" for the list form).
func (s composeService) dependsOn(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	switch d := s.DependsOn.(type) {
	case nil:
	case []any:
		for _, name := range d {
			out[fmt.Sprint(name)] = "service_started"
		}
	case map[string]any:
		for name, v := range d {
			cond := "service_started"
			if m, ok := v.(map[string]any); ok && m["condition"] != nil {
				cond = fmt.Sprint(m["condition"])
			}
			out[name] = cond
		}
	default:
		t.Fatalf("depends_on of unexpected shape %T", d)
	}
	return out
}

func (s composeService) healthTest() string {
	if s.Healthcheck == nil {
		return ""
	}
	switch v := s.Healthcheck.Test.(type) {
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, p := range v {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, " ")
	}
	return ""
}

func (s composeService) command() []string {
	switch v := s.Command.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, len(v))
		for i, p := range v {
			out[i] = fmt.Sprint(p)
		}
		return out
	}
	return nil
}

func repoFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return b
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var f composeFile
	if err := yaml.Unmarshal(repoFile(t, "compose.yaml"), &f); err != nil {
		t.Fatalf("compose.yaml does not parse: %v", err)
	}
	if len(f.Services) == 0 {
		t.Fatal("compose.yaml has no services")
	}
	return f
}

var envInHelp = regexp.MustCompile(`\(env (HERALD_[A-Z0-9_]+)\)`)

// captureStderr returns what fn writes to os.Stderr (flag usage goes there).
func captureStderr(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() {
		os.Stderr = saved
	}()
	fn()
	os.Stderr = saved
	_ = w.Close()
	out := <-done
	_ = r.Close()
	return out
}

// heraldVariables is every HERALD_* variable Herald reads: those of the serve
// flags (from the help of the FlagSet that Config registers), plus those of
// the other commands (from their --help output).
func heraldVariables(t *testing.T) map[string]string {
	t.Helper()
	vars := map[string]string{}
	var c Config
	ef := newEnvFlags("serve", "")
	c.register(ef)
	ef.fs.VisitAll(func(f *flag.Flag) {
		if m := envInHelp.FindStringSubmatch(f.Usage); m != nil {
			vars[m[1]] = "serve"
		}
	})
	for _, args := range [][]string{
		{"migrate", "-h"},
		{"publish", "-h"},
		{"tenants", "list", "-h"},
		{"apps", "list", "-h"},
		{"keys", "list", "-h"},
	} {
		var err error
		help := captureStderr(t, func() { err = run(context.Background(), args) })
		if err != nil {
			t.Fatalf("herald %s: %v", strings.Join(args, " "), err)
		}
		found := envInHelp.FindAllStringSubmatch(help, -1)
		if len(found) == 0 {
			t.Fatalf("herald %s printed no (env HERALD_...) names; help was:\n%s", strings.Join(args, " "), help)
		}
		for _, m := range found {
			if _, ok := vars[m[1]]; !ok {
				vars[m[1]] = args[0]
			}
		}
	}
	return vars
}

// unknownHeraldVariables lists the HERALD_* names of env that Herald does not read.
func unknownHeraldVariables(env map[string]string, known map[string]string) []string {
	var bad []string
	for k := range env {
		if strings.HasPrefix(k, "HERALD_") {
			if _, ok := known[k]; !ok {
				bad = append(bad, k)
			}
		}
	}
	sort.Strings(bad)
	return bad
}

func TestHeraldVariables_FromFlagHelp(t *testing.T) {
	vars := heraldVariables(t)
	// A sample of each source, so a broken derivation cannot pass vacuously.
	for name, from := range map[string]string{
		"HERALD_ADDR":         "serve",
		"HERALD_DATABASE_URL": "serve",
		"HERALD_REDIS_URL":    "serve",
		"HERALD_MASTER_KEY":   "serve",
		"HERALD_ADMIN_TOKEN":  "serve",
		"HERALD_NODE_ID":      "serve",
		"HERALD_URL":          "publish",
		"HERALD_APP_SECRET":   "publish",
	} {
		if _, ok := vars[name]; !ok {
			t.Errorf("%s (read by herald %s) is missing from the derived variables %v", name, from, vars)
		}
	}
	bogus := map[string]string{"HERALD_ADDR": "x", "HERALD_REDIS_URI": "x", "POSTGRES_USER": "x"}
	if got := unknownHeraldVariables(bogus, vars); !slices.Equal(got, []string{"HERALD_REDIS_URI"}) {
		t.Errorf("unknownHeraldVariables(%v) = %v, want [HERALD_REDIS_URI]", bogus, got)
	}
}

func TestCompose_Services(t *testing.T) {
	f := loadCompose(t)
	for _, name := range []string{"postgres", "redis", "migrate", "herald-1", "herald-2", "herald-console", "nginx"} {
		if _, ok := f.Services[name]; !ok {
			t.Errorf("compose.yaml has no service %q", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	pg := f.Services["postgres"]
	if !strings.HasPrefix(pg.Image, "postgres:16") {
		t.Errorf("postgres image = %q, want postgres:16", pg.Image)
	}
	if !strings.Contains(pg.healthTest(), "pg_isready") {
		t.Errorf("postgres healthcheck = %q, want pg_isready", pg.healthTest())
	}
	rd := f.Services["redis"]
	if !strings.HasPrefix(rd.Image, "redis:7") {
		t.Errorf("redis image = %q, want redis:7", rd.Image)
	}
	if h := rd.healthTest(); !strings.Contains(h, "redis-cli") || !strings.Contains(h, "ping") {
		t.Errorf("redis healthcheck = %q, want redis-cli ping", h)
	}

	mig := f.Services["migrate"]
	if mig.Build == nil {
		t.Error("migrate has no build: it must run the Herald image")
	}
	if got := mig.command(); !slices.Equal(got, []string{"migrate"}) {
		t.Errorf("migrate command = %q, want [migrate]", got)
	}
	if mig.Restart != "no" {
		t.Errorf(`migrate restart = %q, want "no" (a one-shot job)`, mig.Restart)
	}
	if d := mig.dependsOn(t); d["postgres"] != "service_healthy" {
		t.Errorf("migrate depends_on = %v, want postgres: service_healthy", d)
	}
	migURL := mig.env(t)["HERALD_DATABASE_URL"]
	if migURL == "" {
		t.Error("migrate sets no HERALD_DATABASE_URL")
	}

	nodeIDs := map[string]string{}
	for _, name := range []string{"herald-1", "herald-2", "herald-console"} {
		s := f.Services[name]
		if s.Build == nil {
			t.Errorf("%s has no build", name)
		}
		if cmd := s.command(); cmd != nil && !slices.Equal(cmd, []string{"serve"}) {
			t.Errorf("%s command = %q, want the image's default (serve)", name, cmd)
		}
		d := s.dependsOn(t)
		if d["migrate"] != "service_completed_successfully" {
			t.Errorf("%s depends_on = %v, want migrate: service_completed_successfully", name, d)
		}
		for _, backend := range []string{"postgres", "redis"} {
			if d[backend] != "service_healthy" {
				t.Errorf("%s depends_on = %v, want %s: service_healthy", name, d, backend)
			}
		}
		env := s.env(t)
		if env["HERALD_ADDR"] != "0.0.0.0:6001" {
			t.Errorf("%s HERALD_ADDR = %q, want 0.0.0.0:6001", name, env["HERALD_ADDR"])
		}
		if env["HERALD_DATABASE_URL"] != migURL {
			t.Errorf("%s HERALD_DATABASE_URL = %q, but migrate migrates %q", name, env["HERALD_DATABASE_URL"], migURL)
		}
		if !strings.HasPrefix(env["HERALD_DATABASE_URL"], "postgres://") || !strings.Contains(env["HERALD_DATABASE_URL"], "@postgres:5432/") {
			t.Errorf("%s HERALD_DATABASE_URL = %q, want the postgres service", name, env["HERALD_DATABASE_URL"])
		}
		if !strings.HasPrefix(env["HERALD_REDIS_URL"], "redis://redis:6379") {
			t.Errorf("%s HERALD_REDIS_URL = %q, want the redis service", name, env["HERALD_REDIS_URL"])
		}
		for _, secret := range []string{"HERALD_MASTER_KEY", "HERALD_ADMIN_TOKEN"} {
			if !strings.HasPrefix(env[secret], "${"+secret+":?") {
				t.Errorf("%s %s = %q, want ${%s:?...} so that compose refuses to start without it", name, secret, env[secret], secret)
			}
		}
		id := env["HERALD_NODE_ID"]
		if id == "" {
			t.Errorf("%s sets no HERALD_NODE_ID", name)
		} else if other, dup := nodeIDs[id]; dup {
			t.Errorf("%s and %s share HERALD_NODE_ID %q", name, other, id)
		}
		nodeIDs[id] = name
	}
	if p := f.Services["herald-console"].Ports; slices.ContainsFunc(p, func(s string) bool { return strings.HasPrefix(s, "6001:") }) {
		t.Errorf("herald-console publishes %v: port 6001 belongs to nginx", p)
	}

	ng := f.Services["nginx"]
	if !strings.HasPrefix(ng.Image, "nginx:1.27") {
		t.Errorf("nginx image = %q, want nginx:1.27", ng.Image)
	}
	if !slices.Contains(ng.Ports, "6001:80") {
		t.Errorf("nginx ports = %v, want 6001:80", ng.Ports)
	}
	if !slices.ContainsFunc(ng.Volumes, func(v string) bool { return strings.HasPrefix(v, "./deploy/nginx.conf:") }) {
		t.Errorf("nginx volumes = %v, want ./deploy/nginx.conf mounted", ng.Volumes)
	}
	if ng.healthTest() == "" {
		t.Error("nginx has no healthcheck")
	}
	d := ng.dependsOn(t)
	for _, gw := range []string{"herald-1", "herald-2"} {
		if _, ok := d[gw]; !ok {
			t.Errorf("nginx depends_on = %v, want %s", d, gw)
		}
	}
}

func TestCompose_HeraldVariablesAreRead(t *testing.T) {
	f := loadCompose(t)
	known := heraldVariables(t)
	names := make([]string, 0, len(f.Services))
	for name := range f.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	checked := 0
	for _, name := range names {
		env := f.Services[name].env(t)
		for k := range env {
			if strings.HasPrefix(k, "HERALD_") {
				checked++
			}
		}
		if bad := unknownHeraldVariables(env, known); len(bad) > 0 {
			t.Errorf("service %s sets %v, which Herald does not read", name, bad)
		}
	}
	if checked < 10 {
		t.Errorf("only %d HERALD_* variables found in compose.yaml: is the environment parsed?", checked)
	}
}

// The compose file runs `command: ["migrate"]` on the Herald image, which
// needs the binary as ENTRYPOINT and serve as the default CMD.
func TestDockerfile_EntrypointTakesCommands(t *testing.T) {
	df := string(repoFile(t, "Dockerfile"))
	var entry, cmd string
	for _, line := range strings.Split(df, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "ENTRYPOINT "); ok {
			entry = strings.ReplaceAll(v, " ", "")
		}
		if v, ok := strings.CutPrefix(line, "CMD "); ok {
			cmd = strings.ReplaceAll(v, " ", "")
		}
	}
	if entry != `["/herald"]` {
		t.Errorf(`Dockerfile ENTRYPOINT = %s, want ["/herald"]`, entry)
	}
	if cmd != `["serve"]` {
		t.Errorf(`Dockerfile CMD = %s, want ["serve"]`, cmd)
	}
}

func TestNginxConf_ProxiesWebSocketsToBothGateways(t *testing.T) {
	conf := string(repoFile(t, filepath.Join("deploy", "nginx.conf")))
	// Directives only, comments removed.
	var lines []string
	for _, line := range strings.Split(conf, "\n") {
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		if line = strings.Join(strings.Fields(line), " "); line != "" {
			lines = append(lines, line)
		}
	}
	directives := strings.Join(lines, "\n")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^upstream (\S+) \{$`),
		regexp.MustCompile(`(?m)^server herald-1:6001\b`),
		regexp.MustCompile(`(?m)^server herald-2:6001\b`),
		regexp.MustCompile(`(?m)^proxy_pass http://\S+;$`),
		regexp.MustCompile(`(?m)^proxy_http_version 1\.1;$`),
		regexp.MustCompile(`(?m)^proxy_set_header Upgrade \$http_upgrade;$`),
		regexp.MustCompile(`(?m)^proxy_set_header Connection (\$connection_upgrade|"upgrade"|upgrade);$`),
		regexp.MustCompile(`(?m)^proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;$`),
		regexp.MustCompile(`(?m)^proxy_read_timeout 3600s;$`),
		regexp.MustCompile(`(?m)^listen 80;$`),
	} {
		if !want.MatchString(directives) {
			t.Errorf("deploy/nginx.conf lacks %s", want)
		}
	}
	if strings.Contains(directives, "$connection_upgrade") && !strings.Contains(directives, "map $http_upgrade $connection_upgrade") {
		t.Error("deploy/nginx.conf uses $connection_upgrade without defining it (map $http_upgrade $connection_upgrade)")
	}
	if up := regexp.MustCompile(`(?m)^upstream (\S+) \{$`).FindStringSubmatch(directives); up != nil &&
		!strings.Contains(directives, "proxy_pass http://"+up[1]+";") {
		t.Errorf("proxy_pass does not use the upstream %s", up[1])
	}
	if strings.Contains(directives, "herald-console") {
		t.Error("deploy/nginx.conf routes to herald-console, which is not a gateway")
	}
}
