package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldrt/herald/migrations"
)

// migrateCommand applies pending migrations under the advisory lock.
func migrateCommand(ctx context.Context, args []string, out io.Writer) error {
	ef := newEnvFlags("migrate", "Usage: herald migrate [flags]\n\nApplies the pending migrations in order, each in a transaction, under an\nadvisory lock so that two nodes never migrate at once.\n")
	var url string
	ef.String(&url, "database-url", "HERALD_DATABASE_URL", "", "PostgreSQL URL")
	if err := ef.parse(args); err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("--database-url or HERALD_DATABASE_URL is required")
	}
	pool, err := openPool(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	return runMigrate(ctx, pool, out)
}

func runMigrate(ctx context.Context, pool *pgxpool.Pool, w io.Writer) error {
	applied, err := migrations.Apply(ctx, pool)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(w, "the schema is up to date")
	}
	for _, name := range applied {
		fmt.Fprintln(w, "applied", name)
	}
	return nil
}

// operatorClient calls the management API of a running node.
type operatorClient struct {
	url, token string
	json       bool
	out        io.Writer
}

// manageCommand runs "herald tenants|apps|keys ..." through the management
// API, so every change is announced to all nodes by the node that makes it.
func manageCommand(ctx context.Context, object string, args []string, in io.Reader, out io.Writer) error {
	ef := newEnvFlags(object, "Usage:\n"+manageUsage[object]+"\nFlags go before the arguments.\n")
	fs := ef.fs
	oc := &operatorClient{out: out}
	ef.String(&oc.url, "url", "HERALD_URL", "http://127.0.0.1:6001", "base URL of a Herald node")
	ef.String(&oc.token, "token", "HERALD_ADMIN_TOKEN", "", "operator token (prefer the variable)")
	fs.BoolVar(&oc.json, "json", false, "print the API's JSON answer")
	var id, name, plan, tenant, settings, enabled string
	fs.StringVar(&id, "id", "", "id of the new tenant or app (generated when empty)")
	fs.StringVar(&name, "name", "", "name")
	fs.StringVar(&plan, "plan", "", "plan of a new tenant: free, pro or enterprise")
	fs.StringVar(&tenant, "tenant", "", "tenant id of a new app, or to filter a list")
	fs.StringVar(&settings, "settings", "", `app settings as JSON, e.g. {"limits":{"max_connections":100}}`)
	fs.StringVar(&enabled, "enabled", "", "true or false, to enable or disable an app")
	var user, roles, channel, action, draft string
	fs.StringVar(&user, "user", "", "policy check: the user id (anonymous when empty)")
	fs.StringVar(&roles, "roles", "", "policy check: comma-separated roles of the user")
	fs.StringVar(&channel, "channel", "", "policy check: the channel")
	fs.StringVar(&action, "action", "subscribe", "policy check: subscribe or client-event")
	fs.StringVar(&draft, "draft", "", "policy check: a policy file to check instead of the one in force (- for stdin)")
	if len(args) == 0 {
		fs.Usage()
		return fmt.Errorf("herald %s needs a subcommand", object)
	}
	verb := args[0]
	if err := ef.parse(args[1:]); err != nil {
		return err
	}
	rest := fs.Args()
	arg := func(i int, what string) (string, error) {
		if len(rest) <= i {
			return "", fmt.Errorf("herald %s %s needs %s", object, verb, what)
		}
		return rest[i], nil
	}
	body := map[string]any{}
	if id != "" {
		body["id"] = id
	}
	if name != "" {
		body["name"] = name
	}
	if settings != "" {
		var v json.RawMessage
		if err := json.Unmarshal([]byte(settings), &v); err != nil {
			return fmt.Errorf("--settings is not JSON: %v", err)
		}
		body["settings"] = v
	}
	if enabled != "" {
		body["enabled"] = enabled == "true"
	}
	switch object + " " + verb {
	case "tenants create":
		if plan != "" {
			body["plan"] = plan
		}
		return oc.do(ctx, http.MethodPost, "/v1/tenants", body)
	case "tenants list":
		return oc.do(ctx, http.MethodGet, "/v1/tenants", nil)
	case "tenants get", "tenants suspend", "tenants activate":
		t, err := arg(0, "a tenant id")
		if err != nil {
			return err
		}
		if verb == "get" {
			return oc.do(ctx, http.MethodGet, "/v1/tenants/"+t, nil)
		}
		return oc.do(ctx, http.MethodPost, "/v1/tenants/"+t+"/"+verb, nil)
	case "apps create":
		body["tenant_id"] = tenant
		return oc.do(ctx, http.MethodPost, "/v1/apps", body)
	case "apps list":
		path := "/v1/apps"
		if tenant != "" {
			path += "?tenant=" + tenant
		}
		return oc.do(ctx, http.MethodGet, path, nil)
	case "apps limits":
		a, err := arg(0, "an app id")
		if err != nil {
			return err
		}
		return oc.do(ctx, http.MethodGet, "/v1/apps/"+a+"/limits", nil)
	case "plans list":
		return oc.do(ctx, http.MethodGet, "/v1/plans", nil)
	case "policy get", "policy versions":
		a, err := arg(0, "an app id")
		if err != nil {
			return err
		}
		if verb == "versions" {
			return oc.do(ctx, http.MethodGet, "/v1/apps/"+a+"/policy/versions", nil)
		}
		return oc.do(ctx, http.MethodGet, "/v1/apps/"+a+"/policy", nil)
	case "policy set":
		a, err := arg(0, "an app id and a policy file (- for stdin)")
		if err != nil {
			return err
		}
		file, err := arg(1, "an app id and a policy file (- for stdin)")
		if err != nil {
			return err
		}
		doc, err := readInput(file, in)
		if err != nil {
			return err
		}
		return oc.do(ctx, http.MethodPut, "/v1/apps/"+a+"/policy", map[string]any{"policy": doc})
	case "policy check":
		a, err := arg(0, "an app id")
		if err != nil {
			return err
		}
		check := map[string]any{"user_id": user, "channel": channel, "action": action}
		if roles != "" {
			check["roles"] = strings.Split(roles, ",")
		}
		if draft != "" {
			doc, err := readInput(draft, in)
			if err != nil {
				return err
			}
			check["policy"] = doc
		}
		return oc.do(ctx, http.MethodPost, "/v1/apps/"+a+"/policy/check", check)
	case "apps get", "apps update", "apps disable":
		a, err := arg(0, "an app id")
		if err != nil {
			return err
		}
		switch verb {
		case "get":
			return oc.do(ctx, http.MethodGet, "/v1/apps/"+a, nil)
		case "disable":
			return oc.do(ctx, http.MethodPost, "/v1/apps/"+a+"/disable", nil)
		}
		return oc.do(ctx, http.MethodPatch, "/v1/apps/"+a, body)
	case "keys list", "keys create", "keys rotate":
		a, err := arg(0, "an app id")
		if err != nil {
			return err
		}
		if verb == "list" {
			return oc.do(ctx, http.MethodGet, "/v1/apps/"+a+"/keys", nil)
		}
		return oc.do(ctx, http.MethodPost, "/v1/apps/"+a+"/keys", nil)
	case "keys revoke":
		a, err := arg(0, "an app id and a key")
		if err != nil {
			return err
		}
		k, err := arg(1, "an app id and a key")
		if err != nil {
			return err
		}
		return oc.do(ctx, http.MethodDelete, "/v1/apps/"+a+"/keys/"+k, nil)
	}
	fs.Usage()
	return fmt.Errorf("unknown command: herald %s %s", object, verb)
}

var manageUsage = map[string]string{
	"tenants": `  herald tenants create --name NAME [--id ID] [--plan free|pro|enterprise]
  herald tenants list
  herald tenants get|suspend|activate TENANT`,
	"apps": `  herald apps create --tenant TENANT --name NAME [--id ID] [--settings JSON] [--enabled=false]
  herald apps list [--tenant TENANT]
  herald apps get APP
  herald apps update [--name NAME] [--settings JSON] [--enabled true|false] APP
  herald apps disable APP
  herald apps limits APP     the app's limits as set, under its plan, and this node's refusals`,
	"policy": `  herald policy get APP
  herald policy set APP FILE          replace the policy (FILE - reads stdin); errors name the line
  herald policy check [--user ID] [--roles a,b] --channel CH [--action subscribe|client-event] [--draft FILE] APP
  herald policy versions APP          who changed the policy, and when`,
	"plans": `  herald plans list`,
	"keys": `  herald keys create APP     add a key (its secret is shown once)
  herald keys rotate APP     the same: add the new key, move clients, then revoke the old
  herald keys revoke APP KEY
  herald keys list APP`,
}

// readInput reads a file, or in for "-", bounded like the API's body limit.
func readInput(name string, in io.Reader) (string, error) {
	r := in
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, 256<<10))
	return string(b), err
}

func (oc *operatorClient) do(ctx context.Context, method, path string, body map[string]any) error {
	if oc.token == "" {
		return fmt.Errorf("--token or HERALD_ADMIN_TOKEN is required")
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(oc.url, "/")+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+oc.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(reply, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	if oc.json {
		var pretty bytes.Buffer
		if json.Indent(&pretty, reply, "", "  ") == nil {
			reply = pretty.Bytes()
		}
		_, err := fmt.Fprintln(oc.out, string(reply))
		return err
	}
	return printHuman(oc.out, reply)
}

// printHuman prints an answer as aligned key/value lines, lists as tables.
func printHuman(w io.Writer, reply []byte) error {
	var v any
	if err := json.Unmarshal(reply, &v); err != nil {
		_, err := w.Write(reply)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	printValue(tw, "", v)
	return tw.Flush()
}

func printValue(w io.Writer, indent string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			switch child := x[k].(type) {
			case map[string]any, []any:
				fmt.Fprintf(w, "%s%s:\n", indent, k)
				printValue(w, indent+"  ", child)
			default:
				fmt.Fprintf(w, "%s%s\t%v\n", indent, k, child)
			}
		}
	case []any:
		if len(x) == 0 {
			fmt.Fprintf(w, "%s(none)\n", indent)
		}
		for i, item := range x {
			fmt.Fprintf(w, "%s- %d\n", indent, i+1)
			printValue(w, indent+"  ", item)
		}
	default:
		fmt.Fprintf(w, "%s%v\n", indent, x)
	}
}
