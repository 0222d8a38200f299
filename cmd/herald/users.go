package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/tenants"
)

const usersUsage = `Usage: herald users create --email EMAIL [--platform-admin] [--tenant ID --role owner|operator|viewer] [flags] < password

Creates a console user in PostgreSQL, reading the password from the first
line of standard input (so it never shows in the process list or shell
history). With --tenant the user gets that role in the tenant.
`

func usersCommand(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	ef := newEnvFlags("users", usersUsage)
	var url, email, tenant, role string
	var admin bool
	ef.String(&url, "database-url", "HERALD_DATABASE_URL", "", "PostgreSQL URL")
	ef.fs.StringVar(&email, "email", "", "the user's email")
	ef.fs.BoolVar(&admin, "platform-admin", false, "make the user a platform admin (all tenants)")
	ef.fs.StringVar(&tenant, "tenant", "", "a tenant to make the user a member of")
	ef.fs.StringVar(&role, "role", "viewer", "the user's role in --tenant: owner, operator or viewer")
	if len(args) == 0 || args[0] != "create" {
		ef.fs.Usage()
		return fmt.Errorf("herald users needs the subcommand create")
	}
	if err := ef.parse(args[1:]); err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("--database-url or HERALD_DATABASE_URL is required: console users live in PostgreSQL (in embedded mode use HERALD_ADMIN_EMAIL and HERALD_ADMIN_PASSWORD)")
	}
	if !tenants.Role(role).Valid() {
		return fmt.Errorf("--role must be owner, operator or viewer")
	}
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return err
	}
	hash, err := authz.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		return fmt.Errorf("password on standard input: %w", err)
	}
	pool, err := openPool(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	users := tenants.NewPostgresUsers(pool)
	u := tenants.NewUser(email, hash)
	u.PlatformAdmin = admin
	if err := users.CreateUser(ctx, u); err != nil {
		return err
	}
	if tenant != "" {
		if err := users.SetMembership(ctx, tenants.Membership{UserID: u.ID, TenantID: tenant, Role: tenants.Role(role)}); err != nil {
			return fmt.Errorf("user %s was created, but not made a member of %s: %w", u.Email, tenant, err)
		}
	}
	details := map[string]string{"email": u.Email, "platform_admin": fmt.Sprint(admin)}
	if tenant != "" {
		details["tenant"], details["role"] = tenant, role
	}
	// Whoever can run this holds the database URL: the entry names the
	// command, as nothing better identifies them.
	if _, err := audit.NewPostgresLog(pool).Append(ctx, audit.Entry{Chain: audit.PlatformChain, Actor: "cli:herald users create",
		Action: "user.create", Target: u.ID, Details: details}); err != nil {
		return fmt.Errorf("user %s was created, but the audit entry failed: %w", u.Email, err)
	}
	kind := "console user"
	if admin {
		kind = "platform admin"
	}
	fmt.Fprintf(out, "created %s %s (%s)\n", kind, u.Email, u.ID)
	return nil
}
