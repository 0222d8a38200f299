package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/template"
)

func serveCommand(ctx context.Context, args []string) error {
	ef := newEnvFlags("serve", "Usage: herald serve [flags]\n\nRuns one Herald node. With no configuration it uses in-memory backends and\ncreates a demo app. Every flag can also be set by the variable named in its\nhelp; a flag wins over its variable.\n")
	var cfg Config
	cfg.register(ef)
	if err := ef.parse(args); err != nil {
		return err
	}
	fs := ef.fs
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	log, err := cfg.Logger()
	if err != nil {
		return err
	}
	m := &Main{Config: cfg, Log: log}
	if err := m.Run(ctx); err != nil {
		_ = m.Close()
		return err
	}
	printBanner(os.Stdout, m)
	<-ctx.Done()
	log.Info("shutting down")
	return m.Close()
}

var banner = template.Must(template.New("banner").Parse(`
Herald is running: {{.Mode}}.

  WebSocket  ws://{{.Host}}/app/{key}?protocol=7
  REST API   http://{{.Host}}/apps/{app_id}/...
  Home       http://{{.Host}}/      (status page; health at /healthz, metrics at /metrics)
  Console    http://{{.ConsoleHost}}/console/
{{with .Admin}}
Console admin (made because there were no console users):
  email     {{.Email}}
  password  {{if .Password}}{{.Password}}   (generated: shown this once, change it){{else}}from HERALD_ADMIN_PASSWORD{{end}}
{{end}}{{with .Demo}}
Demo app (made because no apps were configured; set HERALD_APPS to use your own):
  app id   {{.ID}}
  key      {{.PrimaryKey.Key}}
  secret   {{.PrimaryKey.Secret.Reveal}}

Subscribe with pusher-js:
  const pusher = new Pusher('{{.PrimaryKey.Key}}', {
    cluster: 'local', wsHost: '{{$.Hostname}}', wsPort: {{$.Port}}, httpHost: '{{$.Hostname}}', httpPort: {{$.Port}}, forceTLS: false,
  });
  pusher.subscribe('my-channel').bind('my-event', (data) => console.log(data));

Channels named durable-* are durable: events are kept, and a client that drops resumes where it
stopped with the Herald JS client (http://{{$.Host}}/client/herald.js), or with server-sent events:
  curl -N 'http://{{$.Host}}/app/{{.PrimaryKey.Key}}/sse?channels=durable-news'

Publish:
  go run ./cmd/herald publish --url http://{{$.Host}} --app-id {{.ID}} --key {{.PrimaryKey.Key}} --secret {{.PrimaryKey.Secret.Reveal}} my-channel my-event '{"message":"hello"}'
  or with the pusher npm SDK:
  new Pusher({ appId: '{{.ID}}', key: '{{.PrimaryKey.Key}}', secret: '<secret>', host: '{{$.Hostname}}', port: '{{$.Port}}', useTLS: false })
    .trigger('my-channel', 'my-event', { message: 'hello' });
{{else}}
Apps: {{len .Apps}} ({{range $i, $a := .Apps}}{{if lt $i 10}}{{$a.ID}} {{end}}{{end}}{{if gt (len .Apps) 10}}…{{end}})
{{end}}
Stop with Ctrl-C.
`))

func printBanner(w io.Writer, m *Main) {
	host, port, _ := net.SplitHostPort(m.Addr)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	apps, _ := m.apps.Apps(context.Background(), "")
	mode := "one node, in-memory backends (embedded mode)"
	switch {
	case m.Config.DatabaseURL != "" && m.Config.RedisURL != "":
		mode = "cluster node on PostgreSQL and Redis"
	case m.Config.DatabaseURL != "":
		mode = "one node, apps in PostgreSQL, in-memory backplane"
	case m.Config.RedisURL != "":
		mode = "cluster node on Redis, apps in memory"
	}
	_ = banner.Execute(w, map[string]any{
		"Host":     net.JoinHostPort(host, port),
		"Hostname": strings.Trim(host, "[]"),
		"Port":     port,
		"Demo":     m.DemoApp,
		"Apps":     apps,
		"Mode":     mode,
		"Admin":    m.FirstAdmin,
		// Browsers keep the console's Secure cookie over plain http only
		// for localhost.
		"ConsoleHost": consoleHost(host, port),
	})
}

func consoleHost(host, port string) string {
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil && ip.IsLoopback() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
