package web

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/services/audit"
	"github.com/heraldrt/herald/tenants"
)

// auditPageSize is how many entries the audit page shows at a time.
const auditPageSize = 50

// auditPage is one page of an audit chain, newest first.
type auditPage struct {
	frame
	Chain       string
	Form        auditForm
	FilterError string
	Entries     []audit.Entry
	// Older links to the next page, Newest back to the first; each is
	// empty when there is nowhere to go.
	Older, Newest         string
	ExportCSV, ExportJSON string
	// Verify is the outcome of a verification, VerifyError why it could
	// not run.
	Verify      *audit.Report
	VerifyError string
}

// auditForm is the filter form's entries, as typed.
type auditForm struct {
	App, Actor, Action, Since, Until string
}

// query is the form as URL parameters of chain, leaving out the empty
// ones.
func (f auditForm) query(chain string) url.Values {
	q := url.Values{"tenant": {chain}}
	for name, value := range map[string]string{"app": f.App, "actor": f.Actor, "action": f.Action, "since": f.Since, "until": f.Until} {
		if value != "" {
			q.Set(name, value)
		}
	}
	return q
}

// auditFilter reads the filters from the query: exact app and actor, an
// action prefix, and dates (UTC) of which until is inclusive. A filter it
// cannot read comes back as a message for the page.
func auditFilter(c *fiber.Ctx) (audit.Filter, auditForm, string) {
	form := auditForm{App: strings.TrimSpace(field(c, "app")), Actor: strings.TrimSpace(field(c, "actor")),
		Action: strings.TrimSpace(field(c, "action")), Since: strings.TrimSpace(field(c, "since")), Until: strings.TrimSpace(field(c, "until"))}
	f := audit.Filter{Chain: c.Locals(localChain).(string), AppID: form.App, Actor: form.Actor, ActionPrefix: form.Action}
	if form.Since != "" {
		t, err := time.Parse(time.DateOnly, form.Since)
		if err != nil {
			return f, form, "“Since” must be a date such as 2026-01-31."
		}
		f.Since = t
	}
	if form.Until != "" {
		t, err := time.Parse(time.DateOnly, form.Until)
		if err != nil {
			return f, form, "“Until” must be a date such as 2026-01-31."
		}
		f.Until = t.AddDate(0, 0, 1)
	}
	if before := c.Query("before"); before != "" {
		n, err := strconv.ParseInt(before, 10, 64)
		if err != nil || n < 1 {
			return f, form, "The page link is broken: start again from the first page."
		}
		f.Before = n
	}
	return f, form, ""
}

// auditShell is the audit page without entries.
func (con *Console) auditShell(c *fiber.Ctx, form auditForm) auditPage {
	chain := c.Locals(localChain).(string)
	var f frame
	if t, ok := c.Locals(localTenant).(*tenants.Tenant); ok {
		f = con.frame(c, "audit", "Audit log", tenantCrumb(t))
		f.Title += " · " + t.Name
	} else {
		f = con.frame(c, "audit", "Platform audit log")
	}
	q := form.query(chain)
	q.Set("format", "csv")
	csvURL := "/console/audit/export?" + q.Encode()
	q.Set("format", "json")
	return auditPage{frame: f, Chain: chain, Form: form, ExportCSV: csvURL, ExportJSON: "/console/audit/export?" + q.Encode()}
}

// auditData is the audit page with the entries filter selects. Its error
// is the log's, for con.unavailable.
func (con *Console) auditData(c *fiber.Ctx, filter audit.Filter, form auditForm) (auditPage, error) {
	page := con.auditShell(c, form)
	// One entry more than shown says whether there is an older page.
	filter.Limit = auditPageSize + 1
	entries, err := con.Audit.List(c.UserContext(), filter)
	if err != nil {
		return page, err
	}
	if len(entries) > auditPageSize {
		entries = entries[:auditPageSize]
		q := form.query(page.Chain)
		q.Set("before", strconv.FormatInt(entries[len(entries)-1].Seq, 10))
		page.Older = "/console/audit?" + q.Encode()
	}
	if filter.Before > 0 {
		page.Newest = "/console/audit?" + form.query(page.Chain).Encode()
	}
	page.Entries = entries
	return page, nil
}

func (con *Console) auditPage(c *fiber.Ctx) error {
	filter, form, problem := auditFilter(c)
	if problem != "" {
		page := con.auditShell(c, form)
		page.FilterError = problem
		return con.render(c, fiber.StatusBadRequest, "audit", page)
	}
	page, err := con.auditData(c, filter, form)
	if err != nil {
		return con.unavailable(c, "audit list", err)
	}
	return con.render(c, fiber.StatusOK, "audit", page)
}

// verifyAudit recomputes the chain's hashes and shows the outcome above
// its newest entries. It has no anchors, so it cannot tell a chain cut
// back at its end from an intact one; the page says so.
func (con *Console) verifyAudit(c *fiber.Ctx) error {
	chain := c.Locals(localChain).(string)
	report, verr := audit.Verify(c.UserContext(), con.Audit, chain, nil, nil)
	page, err := con.auditData(c, audit.Filter{Chain: chain}, auditForm{})
	if err != nil {
		return con.unavailable(c, "audit list", err)
	}
	if verr != nil {
		con.Log.Error("console audit verify failed", "chain", chain, "err", verr)
		page.VerifyError = "The verification could not run: the audit log is temporarily unavailable. Try again in a moment."
		return con.render(c, fiber.StatusServiceUnavailable, "audit", page)
	}
	page.Verify = &report
	return con.render(c, fiber.StatusOK, "audit", page)
}

// exportAudit streams every entry the filters select, newest first, as CSV
// (with a header row) or as a JSON array. The first page is read before
// the answer starts, so a log that is down gets an error page; if the log
// fails later the download is visibly cut short (see auditExport.close).
func (con *Console) exportAudit(c *fiber.Ctx) error {
	filter, _, problem := auditFilter(c)
	if problem != "" {
		return con.fail(c, fiber.StatusBadRequest, problem)
	}
	format := strings.Clone(c.Query("format"))
	if format != "csv" && format != "json" {
		return con.fail(c, fiber.StatusBadRequest, "The export format must be csv or json.")
	}
	filter.Before, filter.Limit = 0, audit.MaxLimit // the whole selection, a page at a time
	// The body is written after the handler returns, when c may already
	// serve another request: the writer gets only copies.
	ctx := c.UserContext()
	first, err := con.Audit.List(ctx, filter)
	if err != nil {
		return con.unavailable(c, "audit export", err)
	}
	if format == "csv" {
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	} else {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	}
	// Chain names are [0-9a-z] (tenant ids) or "platform": safe in a
	// header as they are.
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="herald-audit-`+filter.Chain+"."+format+`"`)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		con.streamAudit(ctx, w, format, filter, first)
	})
	return nil
}

// streamAudit writes first and the pages after it. A write error means
// the client went away, and it stops.
func (con *Console) streamAudit(ctx context.Context, w *bufio.Writer, format string, filter audit.Filter, page []audit.Entry) {
	var out auditExport = &jsonExport{w: w}
	if format == "csv" {
		out = newCSVExport(w)
	}
	for {
		for _, e := range page {
			if err := out.entry(e); err != nil {
				return
			}
		}
		if len(page) < filter.Limit {
			break
		}
		filter.Before = page[len(page)-1].Seq
		var err error
		if page, err = con.Audit.List(ctx, filter); err != nil {
			con.Log.Error("console audit export failed", "chain", filter.Chain, "before", filter.Before, "err", err)
			_ = out.close(false)
			return
		}
	}
	_ = out.close(true)
}

// auditExport writes entries in one download format.
type auditExport interface {
	entry(e audit.Entry) error
	// close ends the download and flushes it. An incomplete one (the log
	// failed part way) must not pass for a whole export: the status line
	// is long gone, so the file itself shows it.
	close(complete bool) error
}

// csvHeader names the CSV columns.
var csvHeader = []string{"seq", "time", "chain", "actor", "actor_ip", "tenant_id", "app_id", "action", "target", "reason", "details", "prev_hash", "hash"}

type csvExport struct {
	w  *bufio.Writer
	cw *csv.Writer
}

func newCSVExport(w *bufio.Writer) *csvExport {
	e := &csvExport{w: w, cw: csv.NewWriter(w)}
	_ = e.cw.Write(csvHeader) // an error shows on the first entry's write
	return e
}

func (e *csvExport) entry(a audit.Entry) error {
	details := ""
	if len(a.Details) > 0 {
		b, _ := json.Marshal(a.Details) // a map of strings always encodes
		details = string(b)
	}
	row := []string{strconv.FormatInt(a.Seq, 10), a.Time.UTC().Format(time.RFC3339Nano), a.Chain, a.Actor, a.ActorIP,
		a.TenantID, a.AppID, a.Action, a.Target, a.Reason, details, a.PrevHash, a.Hash}
	for i, cell := range row {
		row[i] = spreadsheetSafe(cell)
	}
	return e.cw.Write(row)
}

// close ends an incomplete export with a one-field row: readers that
// check the field count (encoding/csv does) fail on it, and a person sees
// it at the bottom of the sheet.
func (e *csvExport) close(complete bool) error {
	if !complete {
		_ = e.cw.Write([]string{"EXPORT INCOMPLETE: the audit log failed part way; export again"})
	}
	e.cw.Flush()
	if err := e.cw.Error(); err != nil {
		return err
	}
	return e.w.Flush()
}

// spreadsheetSafe keeps a cell from being read as a formula by a
// spreadsheet (CSV injection): actors, targets and reasons are typed by
// people. A cell starting with = + - @ or a control character gets a
// leading apostrophe. The JSON export is exact, for machines.
func spreadsheetSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

type jsonExport struct {
	w *bufio.Writer
	n int
}

func (e *jsonExport) entry(a audit.Entry) error {
	sep := ",\n"
	if e.n == 0 {
		sep = "[\n"
	}
	e.n++
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if _, err := e.w.WriteString(sep); err != nil {
		return err
	}
	_, err = e.w.Write(b)
	return err
}

// close ends the array; an incomplete export leaves it open, so that no
// JSON parser accepts the file.
func (e *jsonExport) close(complete bool) error {
	if complete {
		end := "\n]\n"
		if e.n == 0 {
			end = "[]\n"
		}
		if _, err := e.w.WriteString(end); err != nil {
			return err
		}
	}
	return e.w.Flush()
}
