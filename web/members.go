package web

import (
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/services/api"
	"github.com/heraldrt/herald/tenants"
)

// Sign-up modes of Console.SignUp.
const (
	SignUpOff    = "off"
	SignUpInvite = "invite"
	SignUpOpen   = "open"
)

// memberRow is one member of the members page.
type memberRow struct {
	UserID string
	Email  string
	Role   tenants.Role
}

// membersPage lists a tenant's members and pending invites.
type membersPage struct {
	frame
	Members []memberRow
	Invites []tenants.Invite
	// ManageMembers shows the owners' forms.
	ManageMembers bool
	Roles         []tenants.Role
	// InviteLink is the link of the invite just made, shown once.
	InviteLink  string
	InviteEmail string
	// Mailed says the invite link was also emailed to InviteEmail.
	Mailed bool
	Error  string
}

var memberRoles = []tenants.Role{tenants.RoleViewer, tenants.RoleOperator, tenants.RoleOwner}

var memberNotices = map[string]string{
	"role":    "Role changed.",
	"removed": "Member removed: they lose access to this tenant at once.",
}

func (con *Console) membersPage(c *fiber.Ctx) error {
	return con.showMembers(c, fiber.StatusOK, func(*membersPage) {})
}

// showMembers renders the members page, changed by set.
func (con *Console) showMembers(c *fiber.Ctx, status int, set func(*membersPage)) error {
	ctx := c.UserContext()
	t := tenantOf(c)
	v := viewerOf(c)
	ms, err := con.Users.Members(ctx, t.ID)
	if err != nil {
		return con.unavailable(c, "member list", err)
	}
	rows := make([]memberRow, 0, len(ms))
	for _, m := range ms {
		u, err := con.Users.UserByID(ctx, m.UserID)
		if err != nil {
			return con.unavailable(c, "member lookup", err)
		}
		rows = append(rows, memberRow{UserID: m.UserID, Email: u.Email, Role: m.Role})
	}
	invs, err := con.Users.Invites(ctx, t.ID)
	if err != nil {
		return con.unavailable(c, "invite list", err)
	}
	f := con.frame(c, "apps", "Members", tenantCrumb(t))
	f.Title = "Members of " + t.Name
	f.Notice = memberNotices[c.Query("done")]
	page := &membersPage{frame: f, Members: rows, Invites: invs, Roles: memberRoles,
		ManageMembers: con.RBAC.Allowed(v.user.PlatformAdmin, v.memberships, t.ID, authz.PermManageMembers)}
	set(page)
	return con.render(c, status, "members", page)
}

// inviteMember makes an invite and shows its link: the only time, as only
// its hash is stored, so the page is the POST's answer.
func (con *Console) inviteMember(c *fiber.Ctx) error {
	t := tenantOf(c)
	email := strings.TrimSpace(field(c, "email"))
	token, err := con.Manager.InviteMember(c.UserContext(), con.actor(c), t.ID, email, tenants.Role(field(c, "role")))
	if err != nil && !errors.Is(err, api.ErrNotAudited) {
		status, msg := con.problem(err)
		return con.showMembers(c, status, func(p *membersPage) { p.Error, p.InviteEmail = msg, email })
	}
	link := c.BaseURL() + "/console/join/" + token
	var mailErr error
	if con.Mailer != nil && err == nil {
		mailErr = con.Mailer.Send(c.UserContext(), email, "You are invited to "+t.Name+" on Herald",
			"You are invited to join "+t.Name+" on Herald as "+field(c, "role")+".\n\nOpen this link within 7 days to accept:\n"+link+"\n")
		if mailErr != nil {
			con.Log.Warn("invite email failed", "tenant", t.ID, "err", mailErr)
		}
	}
	return con.showMembers(c, fiber.StatusCreated, func(p *membersPage) {
		p.InviteLink, p.InviteEmail = link, email
		p.Mailed = con.Mailer != nil && err == nil && mailErr == nil
		switch {
		case err != nil:
			_, p.Error = con.problem(err)
		case mailErr != nil:
			p.Error = "The invite could not be emailed (" + mailErr.Error() + "): pass the link on yourself."
		}
	})
}

func (con *Console) setMemberRole(c *fiber.Ctx) error {
	t := tenantOf(c)
	err := con.Manager.SetMemberRole(c.UserContext(), con.actor(c), t.ID, param(c, "user"), tenants.Role(field(c, "role")))
	return con.afterMemberChange(c, err, "role")
}

func (con *Console) removeMember(c *fiber.Ctx) error {
	t := tenantOf(c)
	err := con.Manager.RemoveMember(c.UserContext(), con.actor(c), t.ID, param(c, "user"))
	return con.afterMemberChange(c, err, "removed")
}

// afterMemberChange redirects back to the members page, or shows it with
// what was wrong (the last owner cannot be demoted or removed).
func (con *Console) afterMemberChange(c *fiber.Ctx, err error, done string) error {
	if err != nil {
		status, msg := con.problem(err)
		if errors.Is(err, tenants.ErrConflict) {
			msg = "The tenant's last owner cannot be removed or made anything but owner: make another member owner first."
		}
		return con.showMembers(c, status, func(p *membersPage) { p.Error = msg })
	}
	return c.Redirect("/console/tenants/"+tenantOf(c).ID+"/members?done="+done, fiber.StatusSeeOther)
}

// publicPage is what the layout needs of a page for visitors who are not
// signed in.
type publicPage struct {
	frame
	Error string
}

// joinPage shows an invite: its tenant and role, and a password form.
type joinPage struct {
	publicPage
	Invite     *tenants.Invite
	TenantName string
	// HasAccount asks for the existing account's password rather than a
	// new one.
	HasAccount bool
	Token      string
}

// Accepting invites and signing up are limited per client IP: both hash
// passwords, and join checks an existing account's password.
var (
	joinPerIP   = authz.Rate{Limit: 10, Period: 15 * time.Minute}
	signupPerIP = authz.Rate{Limit: 5, Period: time.Hour}
)

// showPublic renders a page for visitors who are not signed in, with a
// fresh double-submit CSRF token, as the login page does.
func (con *Console) showPublic(c *fiber.Ctx, status int, page string, data func(publicPage) any) error {
	token := randomToken()
	con.setCookie(c, loginCSRFCookie, token, time.Hour)
	return con.render(c, status, page, data(publicPage{frame: frame{CSRF: token}}))
}

// publicError is the error page of a visitor who is not signed in.
func (con *Console) publicError(c *fiber.Ctx, status int, msg string) error {
	return con.render(c, status, "error", errorPage{frame: frame{Title: "Invite"}, Message: msg})
}

func (con *Console) joinPage(c *fiber.Ctx) error {
	return con.showJoin(c, fiber.StatusOK, "")
}

// showJoin shows the invite of the path's token, or a 404 when it is
// unknown, used or expired.
func (con *Console) showJoin(c *fiber.Ctx, status int, problem string) error {
	ctx := c.UserContext()
	token := param(c, "token")
	inv, err := con.Users.Invite(ctx, token, con.Now())
	if errors.Is(err, tenants.ErrNotFound) {
		return con.publicError(c, fiber.StatusNotFound, "This invite link is not valid: it was already used, it expired, or it was mistyped. Ask the tenant's owner for a new one.")
	}
	if err != nil {
		con.Log.Error("console invite lookup failed", "err", err)
		return con.publicError(c, fiber.StatusServiceUnavailable, "The console is temporarily unavailable. Try again in a moment.")
	}
	t, err := con.Apps.Tenant(ctx, inv.TenantID)
	if err != nil {
		con.Log.Error("console tenant lookup failed", "err", err)
		return con.publicError(c, fiber.StatusServiceUnavailable, "The console is temporarily unavailable. Try again in a moment.")
	}
	_, err = con.Users.UserByEmail(ctx, inv.Email)
	if err != nil && !errors.Is(err, tenants.ErrNotFound) {
		con.Log.Error("console user lookup failed", "err", err)
		return con.publicError(c, fiber.StatusServiceUnavailable, "The console is temporarily unavailable. Try again in a moment.")
	}
	return con.showPublic(c, status, "join", func(p publicPage) any {
		p.Title, p.Error = "Join "+t.Name, problem
		return joinPage{publicPage: p, Invite: inv, TenantName: t.Name, HasAccount: err == nil, Token: token}
	})
}

// join accepts an invite and signs the user in.
func (con *Console) join(c *fiber.Ctx) error {
	ctx := c.UserContext()
	if !sameToken(c.Cookies(loginCSRFCookie), c.FormValue("csrf")) {
		return con.publicError(c, fiber.StatusForbidden, "The form expired or did not come from this site. Reload the page and try again.")
	}
	if v, err := con.Limiter.Take(ctx, authz.GlobalScope, "console-join-ip", con.clientIP(c).String(), joinPerIP, 1); err != nil || !v.Allowed {
		return con.showJoin(c, fiber.StatusTooManyRequests, "Too many attempts from your address. Wait 15 minutes and try again.")
	}
	token := param(c, "token")
	inv, err := con.Users.Invite(ctx, token, con.Now())
	if err != nil {
		return con.showJoin(c, fiber.StatusNotFound, "")
	}
	user, err := con.Manager.AcceptInvite(ctx, token, c.FormValue("password"), con.Now())
	if err != nil && !errors.Is(err, api.ErrNotAudited) {
		if errors.Is(err, tenants.ErrNotFound) {
			return con.showJoin(c, fiber.StatusNotFound, "")
		}
		status, msg := con.problem(err)
		return con.showJoin(c, status, msg)
	}
	if _, err := con.startSession(c, user); err != nil {
		return err
	}
	con.auditLogin(c, user, user.Email, "login")
	return c.Redirect("/console/tenants/"+inv.TenantID, fiber.StatusSeeOther)
}

// signupPage is the sign-up form, or its result: the new tenant's first
// key and secret, shown once.
type signupPage struct {
	publicPage
	Open              bool
	Email, TenantName string
	Tenant            *tenants.Tenant
	App               *tenants.App
	Key               string
	Secret            string
}

// signUpMode is Console.SignUp with its default.
func (con *Console) signUpMode() string {
	switch con.SignUp {
	case SignUpOpen, SignUpInvite:
		return con.SignUp
	}
	return SignUpOff
}

func (con *Console) signupPage(c *fiber.Ctx) error {
	if con.signUpMode() == SignUpOff {
		return c.SendStatus(fiber.StatusNotFound)
	}
	return con.showSignup(c, fiber.StatusOK, "", "", "")
}

func (con *Console) showSignup(c *fiber.Ctx, status int, email, tenantName, problem string) error {
	open := con.signUpMode() == SignUpOpen
	return con.showPublic(c, status, "signup", func(p publicPage) any {
		p.Title, p.Error = "Sign up", problem
		return signupPage{publicPage: p, Open: open, Email: email, TenantName: tenantName}
	})
}

// signup creates an account with its own tenant and first app, signs the
// user in and shows the app's key and secret, the only time.
func (con *Console) signup(c *fiber.Ctx) error {
	ctx := c.UserContext()
	switch con.signUpMode() {
	case SignUpOff:
		return c.SendStatus(fiber.StatusNotFound)
	case SignUpInvite:
		return con.showSignup(c, fiber.StatusForbidden, "", "", "Accounts are only created through invite links here: ask the owner of your tenant for one.")
	}
	if !sameToken(c.Cookies(loginCSRFCookie), c.FormValue("csrf")) {
		return con.publicError(c, fiber.StatusForbidden, "The form expired or did not come from this site. Reload the page and try again.")
	}
	email, tenantName := strings.TrimSpace(field(c, "email")), strings.TrimSpace(field(c, "tenant"))
	if v, err := con.Limiter.Take(ctx, authz.GlobalScope, "console-signup-ip", con.clientIP(c).String(), signupPerIP, 1); err != nil || !v.Allowed {
		return con.showSignup(c, fiber.StatusTooManyRequests, email, tenantName, "Too many sign-ups from your address. Try again in an hour.")
	}
	user, t, app, key, err := con.Manager.SignUp(ctx, email, c.FormValue("password"), tenantName)
	if err != nil && !errors.Is(err, api.ErrNotAudited) {
		status, msg := con.problem(err)
		return con.showSignup(c, status, email, tenantName, msg)
	}
	s, err := con.startSession(c, user)
	if err != nil {
		return err
	}
	con.auditLogin(c, user, user.Email, "login")
	page := signupPage{publicPage: publicPage{frame: frame{Title: "Welcome to Herald", User: user, CSRF: s.CSRF,
		Crumbs: []crumb{{Label: "Tenants", Href: "/console/"}, {Label: t.Name}}}}, Open: true,
		Tenant: t, App: app, Key: key.Key, Secret: key.Secret.Reveal()}
	return con.render(c, fiber.StatusCreated, "signup", page)
}
