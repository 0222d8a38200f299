package web

import (
	"cmp"
	"regexp"
	"slices"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/services/gateway"
	"github.com/heraldrt/herald/services/protocol"
)

// Bounds of the live view: it shows the busiest channels and the members
// of the first presence channels, not everything a big app has.
const (
	liveChannels         = 100
	livePresenceChannels = 20
)

// livePage is the live view's shell; live.js fills it from liveData.
type livePage struct {
	frame
	App appRef
}

func (con *Console) livePage(c *fiber.Ctx) error {
	app := appOf(c)
	f := con.appFrame(c, "Live", "live")
	return con.render(c, fiber.StatusOK, "live", livePage{frame: f, App: appRef{app.ID, app.Name}})
}

type liveNode struct {
	Node        string `json:"node"`
	Connections int    `json:"connections"`
}

type liveChannel struct {
	Name          string `json:"name"`
	Subscriptions int    `json:"subscriptions"`
	Users         *int   `json:"users,omitempty"`
}

type liveMember struct {
	Channel string `json:"channel"`
	UserID  string `json:"user_id"`
}

// liveData answers the live view's figures for the whole cluster:
// connections (in total and per node), occupied channels with their
// subscriptions, and presence members.
func (con *Console) liveData(c *fiber.Ctx) error {
	app := appOf(c)
	ctx := c.UserContext()
	gw := con.Manager.Gateway
	byNode, err := gw.ConnectionsByNode(ctx, app.ID)
	if err != nil {
		return con.unavailable(c, "live connections", err)
	}
	out := struct {
		Connections int           `json:"connections"`
		Nodes       []liveNode    `json:"nodes"`
		Channels    []liveChannel `json:"channels"`
		Members     []liveMember  `json:"members"`
	}{Nodes: []liveNode{}, Channels: []liveChannel{}, Members: []liveMember{}}
	for node, n := range byNode {
		out.Connections += n
		out.Nodes = append(out.Nodes, liveNode{node, n})
	}
	slices.SortFunc(out.Nodes, func(a, b liveNode) int { return cmp.Compare(a.Node, b.Node) })
	channels, err := gw.Channels(ctx, app.ID, "", true)
	if err != nil {
		return con.unavailable(c, "live channels", err)
	}
	slices.SortFunc(channels, func(a, b gateway.ChannelInfo) int {
		return cmp.Or(cmp.Compare(b.Subscriptions, a.Subscriptions), cmp.Compare(a.Name, b.Name))
	})
	presence := 0
	for _, ch := range channels[:min(len(channels), liveChannels)] {
		if ch.Name == protocol.DebugChannel {
			continue
		}
		lc := liveChannel{Name: ch.Name, Subscriptions: ch.Subscriptions}
		if protocol.KindOf(ch.Name) == protocol.Presence {
			lc.Users = &ch.Users
			if presence < livePresenceChannels {
				presence++
				users, err := gw.Users(ctx, app.ID, ch.Name)
				if err != nil {
					return con.unavailable(c, "live members", err)
				}
				for _, u := range users {
					out.Members = append(out.Members, liveMember{ch.Name, u})
				}
			}
		}
		out.Channels = append(out.Channels, lc)
	}
	return c.JSON(out)
}

// debugPage is the debug stream's shell; debug.js opens the stream
// through this node's gateway with a token from debugToken.
type debugPage struct {
	frame
	App appRef
	// Key is an active key of the app, which the page's WebSocket connects
	// with (a key is public; its secret is not needed).
	Key string
}

func (con *Console) debugPage(c *fiber.Ctx) error {
	app := appOf(c)
	f := con.appFrame(c, "Debug stream", "debug")
	page := debugPage{frame: f, App: appRef{app.ID, app.Name}}
	if app.Active() {
		page.Key = app.PrimaryKey().Key
	}
	return con.render(c, fiber.StatusOK, "debug", page)
}

var socketIDPattern = regexp.MustCompile(`^\d{1,20}\.\d{1,20}$`)

// debugToken signs the debug stream's subscription for the console page's
// own connection (the socket id it was given).
func (con *Console) debugToken(c *fiber.Ctx) error {
	socketID := field(c, "socket_id")
	if !socketIDPattern.MatchString(socketID) {
		return c.Status(fiber.StatusBadRequest).JSON(fiber.Map{"error": "socket_id must look like 1234.5678"})
	}
	return c.JSON(fiber.Map{"auth": gateway.DebugToken(con.DebugKey, appOf(c).ID, socketID)})
}
