package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/authz"
	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/gateway"
	"github.com/heraldrt/herald/services/protocol"
	"github.com/heraldrt/herald/tenants"
)

// event is the body of POST /events and one item of a batch.
type event struct {
	Name     *string  `json:"name"`
	Data     *string  `json:"data"`
	Channels []string `json:"channels"`
	Channel  *string  `json:"channel"`
	SocketID string   `json:"socket_id"`
	Info     string   `json:"info"`
}

const dataMustBeString = "data is required and must be a string (JSON-encode objects first, as the Pusher SDKs do)"

var socketIDPattern = regexp.MustCompile(`^\d+\.\d+$`)

// validate checks an event against the app's limits and returns its
// channels. where prefixes messages ("" or "batch[3].").
func (e *event) validate(limits tenants.Limits, where string, batch bool) ([]string, error) {
	if e.Name == nil || *e.Name == "" {
		return nil, badRequest(where + "name is required")
	}
	if len(*e.Name) > protocol.MaxEventNameLength {
		return nil, badRequest(fmt.Sprintf("%sname is longer than %d characters", where, protocol.MaxEventNameLength))
	}
	if protocol.ReservedEvent(*e.Name) {
		return nil, badRequest(where + "name must not start with pusher:, pusher_internal: or herald:")
	}
	if e.Data == nil {
		return nil, badRequest(where + dataMustBeString)
	}
	if len(*e.Data) > limits.MaxPayloadBytes {
		return nil, &Error{fiber.StatusRequestEntityTooLarge, fmt.Sprintf("%sdata is over %d bytes", where, limits.MaxPayloadBytes)}
	}
	channels := e.Channels
	switch {
	case batch && len(channels) > 0:
		return nil, badRequest(where + "a batch event takes one channel, not channels")
	case e.Channel != nil && len(channels) > 0:
		return nil, badRequest(where + "give channel or channels, not both")
	case e.Channel != nil:
		channels = []string{*e.Channel}
	}
	if len(channels) == 0 {
		return nil, badRequest(where + "channels must list at least one channel")
	}
	if len(channels) > limits.MaxChannelsPerEvent {
		return nil, badRequest(fmt.Sprintf("%schannels lists %d channels; at most %d are allowed", where, len(channels), limits.MaxChannelsPerEvent))
	}
	for _, ch := range channels {
		if !protocol.ValidChannelName(ch) {
			return nil, badRequest(fmt.Sprintf("%sinvalid channel name %q: use 1 to %d characters of A-Z a-z 0-9 _ - = @ , . ;", where, protocol.Shorten(ch, 200), protocol.MaxChannelNameLength))
		}
	}
	if len(channels) > 1 {
		for _, ch := range channels {
			if protocol.KindOf(ch) == protocol.PrivateEncrypted {
				return nil, badRequest(where + "an event to an encrypted channel must have exactly one channel")
			}
		}
	}
	if e.SocketID != "" && !socketIDPattern.MatchString(e.SocketID) {
		return nil, badRequest(where + "socket_id must look like 1234.5678")
	}
	if err := checkInfo(e.Info, where); err != nil {
		return nil, err
	}
	return channels, nil
}

func checkInfo(info, where string) error {
	if info == "" {
		return nil
	}
	for _, attr := range strings.Split(info, ",") {
		if attr != "user_count" && attr != "subscription_count" {
			return badRequest(fmt.Sprintf("%sinfo may list user_count and subscription_count, not %q", where, protocol.Shorten(attr, 50)))
		}
	}
	return nil
}

func decodeBody(c *fiber.Ctx, v any) error {
	err := json.Unmarshal(c.Body(), v)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr) && (typeErr.Field == "data" || strings.HasSuffix(typeErr.Field, ".data")):
		return badRequest(dataMustBeString)
	case errors.As(err, &typeErr):
		return badRequest(fmt.Sprintf("request body: %s must be a %s", typeErr.Field, typeErr.Type))
	}
	return badRequest("request body is not valid JSON: " + err.Error())
}

func (s *Server) postEvents(c *fiber.Ctx) error {
	app := appOf(c)
	var e event
	if err := decodeBody(c, &e); err != nil {
		return err
	}
	channels, err := e.validate(limitsOf(c), "", false)
	if err != nil {
		return err
	}
	if err := s.takePublishes(c, app, len(channels)); err != nil {
		return err
	}
	if err := s.publish(c, app, []event{e}, [][]string{channels}); err != nil {
		return err
	}
	if e.Info == "" {
		return emptyObject(c)
	}
	info, err := s.channelsInfo(c, app, channels, e.Info)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"channels": info})
}

func (s *Server) postBatchEvents(c *fiber.Ctx) error {
	app := appOf(c)
	var body struct {
		Batch []event `json:"batch"`
	}
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	if len(body.Batch) == 0 {
		return badRequest("batch must list at least one event")
	}
	if max := limitsOf(c).MaxBatchEvents; len(body.Batch) > max {
		return badRequest(fmt.Sprintf("batch has %d events; at most %d are allowed", len(body.Batch), max))
	}
	channels := make([][]string, len(body.Batch))
	anyInfo := false
	for i := range body.Batch {
		chs, err := body.Batch[i].validate(limitsOf(c), fmt.Sprintf("batch[%d].", i), true)
		if err != nil {
			return err
		}
		channels[i] = chs
		anyInfo = anyInfo || body.Batch[i].Info != ""
	}
	if err := s.takePublishes(c, app, len(body.Batch)); err != nil {
		return err
	}
	// Every event is validated before any is published, so a bad item
	// never leaves a batch half sent.
	if err := s.publish(c, app, body.Batch, channels); err != nil {
		return err
	}
	if !anyInfo {
		return emptyObject(c)
	}
	results := make([]map[string]any, len(body.Batch))
	for i, e := range body.Batch {
		results[i] = map[string]any{}
		if e.Info == "" {
			continue
		}
		info, err := s.channelsInfo(c, app, channels[i], e.Info)
		if err != nil {
			return err
		}
		results[i] = info[channels[i][0]]
	}
	return c.JSON(fiber.Map{"batch": results})
}

// takePublishes counts n channel publishes against the app's publish rate
// before any is sent, so a refused request publishes nothing. The rate
// headers go on every publish answer, so a backend can pace itself.
func (s *Server) takePublishes(c *fiber.Ctx, app *tenants.App, n int) error {
	per := limitsOf(c).PublishesPerSecond
	v, err := s.Limiter.Take(c.UserContext(), app.ID, "publish", "app", authz.PerSecond(int64(per)), int64(n))
	if err != nil {
		return err
	}
	if !v.Allowed {
		s.gateway.Meter().Rejected(app.ID, billing.RejectPublishRate)
		return &authz.LimitError{Limit: "publishes_per_second", Verdict: v,
			Message: fmt.Sprintf("app is over its publish rate: at most %d channel publishes per second, and this request has %d", per, n)}
	}
	if per > 0 {
		v.WriteHeaders(s.Now(), c.Response().Header.SetBytesV)
	}
	return nil
}

// publish publishes every event of a request in order; events for durable
// channels are committed to the log before it returns.
func (s *Server) publish(c *fiber.Ctx, app *tenants.App, events []event, channels [][]string) error {
	n := 0
	for _, chs := range channels {
		n += len(chs)
	}
	out := make([]gateway.Outgoing, 0, n)
	for i := range events {
		e := &events[i]
		data := []byte(*e.Data)
		for _, ch := range channels[i] {
			out = append(out, gateway.Outgoing{Channel: ch, Pub: broker.Publication{Event: *e.Name, Data: data, ExcludeSocketID: e.SocketID}})
		}
	}
	err := s.gateway.Publish(c.UserContext(), app, out)
	switch {
	case errors.Is(err, gateway.ErrLogUnavailable):
		return &Error{fiber.StatusServiceUnavailable, "publish failed: the event log of durable channels is unavailable, retry; nothing was published"}
	case err != nil:
		s.log.Error("publish failed", "app", app.ID, "err", err)
		return &Error{fiber.StatusServiceUnavailable, "publish failed: the message backplane is unavailable, retry"}
	}
	return nil
}

// channelsInfo answers the info attributes of a publish for each channel.
func (s *Server) channelsInfo(c *fiber.Ctx, app *tenants.App, channels []string, info string) (map[string]map[string]any, error) {
	out := make(map[string]map[string]any, len(channels))
	for _, ch := range channels {
		ci, err := s.gateway.Channel(c.UserContext(), app.ID, ch)
		if err != nil {
			return nil, s.unavailable(app, err)
		}
		attrs := map[string]any{}
		for _, attr := range strings.Split(info, ",") {
			switch {
			case attr == "user_count" && protocol.KindOf(ch) == protocol.Presence:
				attrs["user_count"] = ci.Users
			case attr == "subscription_count":
				attrs["subscription_count"] = ci.Subscriptions
			}
		}
		out[ch] = attrs
	}
	return out, nil
}

func (s *Server) unavailable(app *tenants.App, err error) error {
	s.log.Error("channel query failed", "app", app.ID, "err", err)
	return &Error{fiber.StatusServiceUnavailable, "channel information is temporarily unavailable, retry"}
}
