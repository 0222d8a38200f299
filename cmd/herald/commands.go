package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `Herald: a multi-tenant realtime messaging server speaking the Pusher Channels protocol.

Usage:
  herald serve [flags]     run a node (the default when no command is given)
  herald publish [flags] CHANNEL EVENT DATA
                           publish an event through a node's REST API
  herald stream-token [flags] CHANNEL[,CHANNEL...]
                           the auth, user_id and expires of a stream token (SSE, history)
  herald migrate           apply database migrations
  herald tenants ...       create, list, get, suspend, activate tenants
  herald apps ...          create, list, get, update, disable apps; show limits
  herald keys ...          create (rotate), revoke, list app keys
  herald policy ...        get, set, check an app's channel policy; list versions
  herald plans list        the plans and their limits
  herald audit verify      check the audit log's hash chains and name the first broken entry
  herald users create      create a console user (password on standard input)
  herald help              show this text

Run "herald COMMAND --help" for a command's flags and their HERALD_* variables.
`

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serveCommand(ctx, args)
	case "publish":
		err = publishCommand(ctx, args, os.Stdout)
	case "stream-token":
		err = streamTokenCommand(args, os.Stdout)
	case "migrate":
		err = migrateCommand(ctx, args, os.Stdout)
	case "tenants", "apps", "keys", "policy", "plans":
		err = manageCommand(ctx, cmd, args, os.Stdin, os.Stdout)
	case "audit":
		err = auditCommand(ctx, args, os.Stdout)
	case "users":
		err = usersCommand(ctx, args, os.Stdin, os.Stdout)
	case "help":
		fmt.Print(usage)
		return nil
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
