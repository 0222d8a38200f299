package api

import (
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/services/gateway"
	"github.com/heraldrt/herald/services/protocol"
)

func (s *Server) getChannels(c *fiber.Ctx) error {
	app := appOf(c)
	prefix, err := param(c, "filter_by_prefix")
	if err != nil {
		return err
	}
	info, err := param(c, "info")
	if err != nil {
		return err
	}
	var users, subs bool
	for _, attr := range splitInfo(info) {
		switch attr {
		case "user_count":
			if !strings.HasPrefix(prefix, protocol.PrefixPresence) {
				return badRequest("info=user_count needs filter_by_prefix=presence-")
			}
			users = true
		case "subscription_count":
			subs = true
		default:
			return badRequest("info may list user_count and subscription_count, not " + protocol.Shorten(attr, 50))
		}
	}
	list, err := s.gateway.Channels(c.UserContext(), app.ID, prefix, users)
	if err != nil {
		return s.unavailable(app, err)
	}
	channels := make(map[string]map[string]int, len(list))
	for _, ch := range list {
		attrs := map[string]int{}
		if users {
			attrs["user_count"] = ch.Users
		}
		if subs {
			attrs["subscription_count"] = ch.Subscriptions
		}
		channels[ch.Name] = attrs
	}
	return c.JSON(fiber.Map{"channels": channels})
}

func (s *Server) getChannel(c *fiber.Ctx) error {
	app := appOf(c)
	name := pathParam(c, "channel_name")
	if !protocol.ValidChannelName(name) {
		return badRequest("invalid channel name")
	}
	info, err := param(c, "info")
	if err != nil {
		return err
	}
	presence := protocol.KindOf(name) == protocol.Presence
	var users, subs bool
	for _, attr := range splitInfo(info) {
		switch attr {
		case "user_count":
			if !presence {
				return badRequest("user_count is only available for presence channels")
			}
			users = true
		case "subscription_count":
			subs = true
		case "cache":
			return badRequest("cache channels are not supported yet")
		default:
			return badRequest("info may list user_count and subscription_count, not " + protocol.Shorten(attr, 50))
		}
	}
	ci, err := s.gateway.Channel(c.UserContext(), app.ID, name)
	if err != nil {
		return s.unavailable(app, err)
	}
	out := fiber.Map{"occupied": ci.Subscriptions > 0}
	if users {
		out["user_count"] = ci.Users
	}
	if subs {
		out["subscription_count"] = ci.Subscriptions
	}
	return c.JSON(out)
}

func (s *Server) getUsers(c *fiber.Ctx) error {
	app := appOf(c)
	name := pathParam(c, "channel_name")
	if !protocol.ValidChannelName(name) || protocol.KindOf(name) != protocol.Presence {
		return badRequest("users are only available for presence channels")
	}
	ids, err := s.gateway.Users(c.UserContext(), app.ID, name)
	if err != nil {
		return s.unavailable(app, err)
	}
	users := make([]fiber.Map, len(ids))
	for i, id := range ids {
		users[i] = fiber.Map{"id": id}
	}
	return c.JSON(fiber.Map{"users": users})
}

func (s *Server) postTerminate(c *fiber.Ctx) error {
	app := appOf(c)
	user := pathParam(c, "user_id")
	if user == "" || len(user) > 128 {
		return badRequest("user id must be 1 to 128 characters")
	}
	if err := s.gateway.TerminateUser(c.UserContext(), app.ID, user); err != nil {
		s.log.Error("terminate failed", "app", app.ID, "err", err)
		return &Error{fiber.StatusServiceUnavailable, "terminate failed: the message backplane is unavailable, retry"}
	}
	return emptyObject(c)
}

func splitInfo(info string) []string {
	if info == "" {
		return nil
	}
	return strings.Split(info, ",")
}

// getChannelEvents answers a durable channel's events after a sequence
// number: GET /apps/{id}/channels/{name}/events?after_seq=N&limit=M
// (&epoch=E to have a reset channel refused with 410).
func (s *Server) getChannelEvents(c *fiber.Ctx) error {
	app := appOf(c)
	channel := pathParam(c, "channel_name")
	if !protocol.ValidChannelName(channel) {
		return badRequest(fmt.Sprintf("invalid channel name %q", protocol.Shorten(channel, 200)))
	}
	var q gateway.HistoryQuery
	for _, p := range []struct {
		name string
		to   *string
	}{{"after_seq", &q.AfterSeq}, {"limit", &q.Limit}, {"epoch", &q.Epoch}} {
		v, err := param(c, p.name)
		if err != nil {
			return err
		}
		*p.to = v
	}
	page, herr := s.gateway.ReadHistory(c.UserContext(), app, channel, q)
	if herr != nil {
		return c.Status(herr.Status).JSON(herr)
	}
	return c.JSON(page)
}
