package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/tenants"
)

func publishCommand(ctx context.Context, args []string, out io.Writer) error {
	ef := newEnvFlags("publish", "Usage: herald publish [flags] CHANNEL[,CHANNEL...] EVENT DATA\n\nPublishes one event through POST /apps/{app_id}/events, signed like the Pusher SDKs.\n")
	fs := ef.fs
	var url, appID, key, secret, socketID string
	ef.String(&url, "url", "HERALD_URL", "http://127.0.0.1:6001", "base URL of a Herald node's REST API")
	ef.String(&appID, "app-id", "HERALD_APP_ID", "", "app id")
	ef.String(&key, "key", "HERALD_APP_KEY", "", "app key")
	ef.String(&secret, "secret", "HERALD_APP_SECRET", "", "app secret (prefer the variable: flags show up in process lists)")
	fs.StringVar(&socketID, "socket-id", "", "socket id of a connection that must not receive the event")
	if err := ef.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 3 {
		fs.Usage()
		return fmt.Errorf("want CHANNEL EVENT DATA, got %d arguments", fs.NArg())
	}
	if appID == "" || key == "" || secret == "" {
		return fmt.Errorf("--app-id, --key and --secret (or HERALD_APP_ID, HERALD_APP_KEY, HERALD_APP_SECRET) are required")
	}
	body, err := json.Marshal(map[string]any{
		"name": fs.Arg(1), "data": fs.Arg(2), "channels": strings.Split(fs.Arg(0), ","), "socket_id": socketID,
	})
	if err != nil {
		return err
	}
	path := "/apps/" + appID + "/events"
	query := authz.SignRequest(tenants.Key{Key: key, Secret: tenants.NewSecret(secret)}, http.MethodPost, path, nil, body, time.Now())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(url, "/")+path+"?"+query, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(reply))
	}
	fmt.Fprintf(out, "published %s to %s\n", fs.Arg(1), fs.Arg(0))
	return nil
}
