package web

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
)

// policyPage is the channel policy editor of an app.
type policyPage struct {
	frame
	App     appRef
	Current authz.PolicyVersion
	// Document is the editor's text: the current version's, or what was
	// submitted, so a failed save or a check of a draft keeps the edits.
	Document  string
	Unsaved   bool
	SaveError string
	Check     checkForm
	Actions   []string
	// CheckError is why a check could not run; Result is its answer.
	CheckError string
	Result     *checkResult
}

// appRef is what the app's sub-pages show of it.
type appRef struct {
	ID, Name string
}

// checkForm is the entries of the "check a request" form.
type checkForm struct {
	UserID, Roles, Channel, Action string
	Draft                          bool
}

// checkResult is what the policy decided for a check.
type checkResult struct {
	Allowed bool
	// Line and Text are the deciding rule's; Line is 0 when no rule
	// decided.
	Line    int
	Text    string
	Reason  string
	Against string
}

// policyData builds the editor with the current version loaded. Its error
// is the policy store's, for con.unavailable.
func (con *Console) policyData(c *fiber.Ctx) (policyPage, error) {
	app := appOf(c)
	v, err := con.Manager.Policies.Store().Current(c.UserContext(), app.ID)
	if err != nil {
		return policyPage{}, err
	}
	f := con.appFrame(c, "Channel policy", "policy")
	return policyPage{frame: f, App: appRef{app.ID, app.Name}, Current: v, Document: v.Document,
		Check: checkForm{Action: authz.ActionSubscribe}, Actions: []string{authz.ActionSubscribe, authz.ActionClientEvent}}, nil
}

func (con *Console) policyPage(c *fiber.Ctx) error {
	page, err := con.policyData(c)
	if err != nil {
		return con.unavailable(c, "policy lookup", err)
	}
	page.Notice = notice(c)
	return con.render(c, fiber.StatusOK, "policy", page)
}

// submittedPolicy is the editor's text as posted. Browsers send a
// textarea's line breaks as CRLF; policy fields are separated by blanks,
// so a CR would end up inside the last field of every line.
func submittedPolicy(c *fiber.Ctx) string {
	return strings.ReplaceAll(field(c, "policy"), "\r\n", "\n")
}

// savePolicy stores the editor's text as the app's next policy version.
// An invalid document changes nothing: the page comes back with the text
// and the error naming its line.
func (con *Console) savePolicy(c *fiber.Ctx) error {
	page, err := con.policyData(c)
	if err != nil {
		return con.unavailable(c, "policy lookup", err)
	}
	page.Document = submittedPolicy(c)
	page.Check = submittedCheck(c)
	if _, err := con.Manager.ReplacePolicy(c.UserContext(), con.actor(c), page.App.ID, page.Document); err != nil {
		status, msg := con.problem(err)
		page.SaveError, page.Unsaved = msg, page.Document != page.Current.Document
		return con.render(c, status, "policy", page)
	}
	return c.Redirect("/console/apps/"+page.App.ID+"/policy?done=policy", fiber.StatusSeeOther)
}

func submittedCheck(c *fiber.Ctx) checkForm {
	return checkForm{UserID: strings.TrimSpace(field(c, "user_id")), Roles: field(c, "roles"),
		Channel: strings.TrimSpace(field(c, "channel")), Action: field(c, "action"), Draft: c.FormValue("draft") == "1"}
}

// checkPolicy says what the saved policy, or the editor's draft when the
// box is ticked, decides for a user, roles, a channel and an action. It
// changes nothing, so viewers may use it.
func (con *Console) checkPolicy(c *fiber.Ctx) error {
	page, err := con.policyData(c)
	if err != nil {
		return con.unavailable(c, "policy lookup", err)
	}
	page.Document = submittedPolicy(c)
	page.Unsaved = page.Document != page.Current.Document
	page.Check = submittedCheck(c)
	var roles []string
	for _, r := range strings.Split(page.Check.Roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			roles = append(roles, r)
		}
	}
	var draft *string
	against := "the saved policy (version " + strconv.FormatInt(page.Current.Version, 10) + ")"
	if page.Check.Draft {
		draft, against = &page.Document, "the draft above"
	}
	d, _, err := con.Manager.CheckPolicy(c.UserContext(), page.App.ID, draft,
		authz.Subject{UserID: page.Check.UserID, Roles: roles}, page.Check.Channel, page.Check.Action)
	if err != nil {
		status, msg := con.problem(err)
		page.CheckError = msg
		return con.render(c, status, "policy", page)
	}
	page.Result = &checkResult{Allowed: d.Allowed, Reason: d.Reason(), Against: against}
	if d.Rule != nil {
		page.Result.Line, page.Result.Text = d.Rule.Line, d.Rule.Text
	}
	return con.render(c, fiber.StatusOK, "policy", page)
}
