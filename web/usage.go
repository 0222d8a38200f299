package web

import (
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// chartMinutes is the span of the usage charts.
const chartMinutes = 60

// usagePage is a tenant's usage: connections now and messages today per
// app, and charts of the last hour over all of its apps.
type usagePage struct {
	frame
	Apps        []appUsage
	Connections int
	Published   uint64
	Delivered   uint64
	Charts      []chart
}

type appUsage struct {
	ID, Name    string
	Connections int
	Published   uint64 // today, UTC
	Delivered   uint64
}

// chart is a line chart drawn as inline SVG: no script, no external
// library, nothing the CSP has to allow.
type chart struct {
	Title, Unit string
	Max         int64
	Points      string // the polyline's points, in the 600×160 view box
	First, Last string // the time axis' ends
	Empty       bool
}

func (con *Console) usagePage(c *fiber.Ctx) error {
	t := tenantOf(c)
	ctx := c.UserContext()
	apps, err := con.Apps.Apps(ctx, t.ID)
	if err != nil {
		return con.unavailable(c, "app list", err)
	}
	now := con.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	start := now.Truncate(time.Minute).Add(-(chartMinutes - 1) * time.Minute)
	since := today
	if start.Before(since) {
		since = start // the last hour reaches into yesterday
	}
	var conns, msgs [chartMinutes]int64
	page := usagePage{frame: con.frame(c, "usage", "Usage", tenantCrumb(t))}
	for _, a := range apps {
		byNode, err := con.Manager.Gateway.ConnectionsByNode(ctx, a.ID)
		if err != nil {
			return con.unavailable(c, "connections", err)
		}
		u := appUsage{ID: a.ID, Name: a.Name}
		for _, n := range byNode {
			u.Connections += n
		}
		minutes, err := con.Usage.Minutes(ctx, a.ID, since, now.Add(time.Minute))
		if err != nil {
			return con.unavailable(c, "usage", err)
		}
		for _, m := range minutes {
			if !m.Minute.Before(today) {
				u.Published += m.Published
				u.Delivered += m.Delivered
			}
			if i := int(m.Minute.Sub(start) / time.Minute); i >= 0 && i < chartMinutes {
				conns[i] += m.Connections
				msgs[i] += int64(m.Published)
			}
		}
		page.Connections += u.Connections
		page.Published += u.Published
		page.Delivered += u.Delivered
		page.Apps = append(page.Apps, u)
	}
	page.Charts = []chart{
		lineChart("Connections", "connections", conns[:], start),
		lineChart("Messages published per minute", "messages", msgs[:], start),
	}
	return con.render(c, fiber.StatusOK, "usage", page)
}

// lineChart scales values (one a minute from start) into the chart's view
// box, highest value at the top.
func lineChart(title, unit string, values []int64, start time.Time) chart {
	const width, height = 600.0, 160.0
	ch := chart{Title: title, Unit: unit, First: start.Format("15:04"),
		Last: start.Add(time.Duration(len(values)-1) * time.Minute).Format("15:04 UTC")}
	for _, v := range values {
		ch.Max = max(ch.Max, v)
	}
	ch.Empty = ch.Max == 0
	top := float64(max(ch.Max, 1))
	var b strings.Builder
	for i, v := range values {
		x := float64(i) * width / float64(len(values)-1)
		y := height - float64(v)*height/top
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
	}
	ch.Points = strings.TrimSpace(b.String())
	return ch
}
