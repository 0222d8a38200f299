package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/services/api"
)

// broadcastPage is the operator broadcast form, its preview and outcome.
type broadcastPage struct {
	frame
	App    appRef
	Active bool
	Form   broadcastForm
	// Error is why the preview or the send was refused.
	Error   string
	Preview *broadcastPreview
	Sent    string
}

// broadcastForm is the form's entries as typed.
type broadcastForm struct {
	Channels, Event, Payload, Reason string
}

// broadcastPreview is exactly what Send will send and record.
type broadcastPreview struct {
	Channels []string
	// ChannelList and Payload are the hidden fields of the send form:
	// the channels comma-separated and the payload as compact JSON.
	ChannelList string
	Event       string
	Payload     string
	Pretty      string
	SHA256      string
	Reason      string
}

func (con *Console) broadcastData(c *fiber.Ctx) broadcastPage {
	app := appOf(c)
	f := con.appFrame(c, "Broadcast", "broadcast")
	return broadcastPage{frame: f, App: appRef{app.ID, app.Name}, Active: app.Active()}
}

func (con *Console) broadcastPage(c *fiber.Ctx) error {
	return con.render(c, fiber.StatusOK, "broadcast", con.broadcastData(c))
}

// splitChannels reads the channels field: names separated by commas or
// line breaks, blanks around them ignored, each name once.
func splitChannels(s string) []string {
	var out []string
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if name = strings.TrimSpace(name); name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// broadcast previews a broadcast (step=preview, and any other step, so
// that pressing Enter in the form never sends) or sends it (step=send).
// The payload is sent as compact JSON: the preview's SHA-256 is of those
// bytes, which the audit entry records, whatever blanks and line breaks
// the form carried.
func (con *Console) broadcast(c *fiber.Ctx) error {
	page := con.broadcastData(c)
	page.Form = broadcastForm{Channels: field(c, "channels"), Event: strings.TrimSpace(field(c, "event")),
		Payload: field(c, "payload"), Reason: strings.TrimSpace(field(c, "reason"))}
	channels := splitChannels(page.Form.Channels)
	var compact bytes.Buffer
	jsonErr := json.Compact(&compact, []byte(page.Form.Payload))
	switch {
	case len(channels) == 0:
		page.Error = "Name at least one channel."
	case page.Form.Event == "":
		page.Error = "Name the event."
	case jsonErr != nil:
		page.Error = "The payload is not valid JSON: " + jsonErr.Error() + "."
	case page.Form.Reason == "":
		page.Error = "Give a reason: it is recorded in the audit log with the broadcast."
	}
	if page.Error != "" {
		return con.render(c, fiber.StatusBadRequest, "broadcast", page)
	}
	data := compact.String()

	if c.FormValue("step") != "send" {
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, compact.Bytes(), "", "  ") // compact.Bytes() is valid JSON
		sum := sha256.Sum256(compact.Bytes())
		page.Preview = &broadcastPreview{Channels: channels, ChannelList: strings.Join(channels, ","), Event: page.Form.Event,
			Payload: data, Pretty: pretty.String(), SHA256: hex.EncodeToString(sum[:]), Reason: page.Form.Reason}
		return con.render(c, fiber.StatusOK, "broadcast", page)
	}

	reached, err := con.Manager.Broadcast(c.UserContext(), con.actor(c),
		api.Broadcast{AppID: page.App.ID, Channels: channels, Event: page.Form.Event, Data: data, Reason: page.Form.Reason})
	if err != nil {
		status, msg := con.problem(err)
		if errors.Is(err, api.ErrNotAudited) {
			// The Manager records a broadcast before sending it.
			msg = "Not sent: the broadcast could not be recorded in the audit log. Try again in a moment."
		}
		page.Error = msg
		return con.render(c, status, "broadcast", page)
	}
	page.Sent = fmt.Sprintf("Sent %q to %s.", page.Form.Event, plural(reached, "subscription"))
	page.Form = broadcastForm{}
	return con.render(c, fiber.StatusOK, "broadcast", page)
}

// plural writes n and a noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
