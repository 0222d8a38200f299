package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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

// streamTokenCommand prints the query parameters that open a private SSE
// stream (or read a private channel's history) for a user: what an app's
// backend computes, for trying it from a shell.
func streamTokenCommand(args []string, out io.Writer) error {
	ef := newEnvFlags("stream-token", "Usage: herald stream-token [flags] CHANNEL[,CHANNEL...]\n\nPrints the query parameters (auth, user_id, expires) of a stream token for those\nchannels, as an app's backend computes them: append them to\n/app/{key}/sse?channels=... or to a frontend history request.\n")
	fs := ef.fs
	var key, secret, user string
	var ttl time.Duration
	ef.String(&key, "key", "HERALD_APP_KEY", "", "app key")
	ef.String(&secret, "secret", "HERALD_APP_SECRET", "", "app secret (prefer the variable: flags show up in process lists)")
	fs.StringVar(&user, "user", "", "the user the stream is for (the channel policy's subject)")
	fs.DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid (at most 24h)")
	if err := ef.parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || key == "" || secret == "" {
		fs.Usage()
		return fmt.Errorf("want --key, --secret and one CHANNEL[,CHANNEL...] argument")
	}
	if ttl <= 0 || ttl > authz.MaxStreamTokenLife {
		return fmt.Errorf("--ttl must be between 1s and %s", authz.MaxStreamTokenLife)
	}
	expires := time.Now().Add(ttl).Unix()
	token := authz.StreamToken(tenants.Key{Key: key, Secret: tenants.NewSecret(secret)}, strings.Split(fs.Arg(0), ","), user, expires)
	q := url.Values{"auth": {token}, "user_id": {user}, "expires": {strconv.FormatInt(expires, 10)}}
	fmt.Fprintln(out, q.Encode())
	return nil
}
