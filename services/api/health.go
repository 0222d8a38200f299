package api

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/heraldrt/herald/billing"
	"github.com/heraldrt/herald/services/gateway"
)

// Stats is what the health and metrics endpoints read from the node.
type Stats interface {
	Stats() gateway.Stats
	Meter() *billing.Meter
}

// Check is one readiness check: it returns nil when its backend is
// reachable, or an error saying what is wrong (never a secret).
type Check func(ctx context.Context) error

// HealthRoutes registers /healthz (the process is alive), /readyz (every
// check passes; otherwise 503 with the reasons) and /metrics (Prometheus
// text format).
//
// extra, when set, appends the backends' own counters to /metrics.
func HealthRoutes(r fiber.Router, stats Stats, checks map[string]Check, extra func(*strings.Builder)) {
	r.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	r.Get("/readyz", func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
		defer cancel()
		reasons := map[string]string{}
		for name, check := range checks {
			if err := check(ctx); err != nil {
				reasons[name] = err.Error()
			}
		}
		if len(reasons) > 0 {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"ready": false, "reasons": reasons})
		}
		return c.JSON(fiber.Map{"ready": true})
	})
	r.Get("/metrics", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/plain; version=0.0.4")
		ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
		defer cancel()
		var b strings.Builder
		writeMetrics(&b, stats)
		b.WriteString("# HELP herald_backend_up Whether a backend answered its readiness check.\n# TYPE herald_backend_up gauge\n")
		for _, name := range slices.Sorted(maps.Keys(checks)) {
			up := 1
			if checks[name](ctx) != nil {
				up = 0
			}
			fmt.Fprintf(&b, "herald_backend_up{backend=%q} %d\n", name, up)
		}
		if extra != nil {
			extra(&b)
		}
		return c.SendString(b.String())
	})
}

// metrics renders the node's counters. Labels are app ids only: channel and
// user names never become labels, so cardinality stays bounded and no
// tenant data leaks into monitoring.
func writeMetrics(b *strings.Builder, stats Stats) {
	s := stats.Stats()
	gauge := func(name, help string, v any) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %v\n", name, help, name, name, v)
	}
	counter := func(name, help string, v any) {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s counter\n%s %v\n", name, help, name, name, v)
	}
	gauge("herald_connections", "Open client connections on this node.", s.Connections)
	counter("herald_slow_consumers_total", "Connections closed because their queue overflowed.", s.SlowConsumers)
	counter("herald_panics_total", "Connection handler panics recovered.", s.Panics)
	gauge("herald_durable_channels", "Durable channels with subscribers on this node.", s.DurableChannels)
	counter("herald_durable_repairs_total", "Times this node read durable events it missed (late, lost or reordered on the backplane) from the log.", s.Repairs)
	counter("herald_durable_resumes_total", "herald:resume requests (and SSE Last-Event-ID cursors) applied.", s.Resumes)
	counter("herald_durable_resumes_failed_total", "Resumes answered with herald:resume_failed.", s.ResumesFailed)
	counter("herald_durable_backplane_refused_total", "Committed durable events the backplane refused (delivered from the log instead).", s.BackplaneRefused)
	usage := stats.Meter().Snapshot()
	slices.SortFunc(usage, func(a, b billing.Usage) int { return strings.Compare(a.AppID, b.AppID) })
	perApp := []struct {
		name, kind, help string
		value            func(billing.Usage) any
	}{
		{"herald_app_connections", "gauge", "Open connections per app.", func(u billing.Usage) any { return u.Connections }},
		{"herald_app_published_total", "counter", "Channel publishes accepted per app.", func(u billing.Usage) any { return u.Published }},
		{"herald_app_delivered_total", "counter", "Messages handed to connections per app.", func(u billing.Usage) any { return u.Delivered }},
	}
	for _, m := range perApp {
		fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.kind)
		for _, u := range usage {
			if u.AppID != "" {
				fmt.Fprintf(b, "%s{app=%q} %v\n", m.name, u.AppID, m.value(u))
			}
		}
	}
	// Refusals before the app is known (per-IP limits) carry app="".
	const rejections = "herald_rejections_total"
	fmt.Fprintf(b, "# HELP %s Refusals by a limit, a quota or the channel policy, per app and reason.\n# TYPE %s counter\n", rejections, rejections)
	for _, u := range usage {
		for _, reason := range slices.Sorted(maps.Keys(u.Rejected)) {
			fmt.Fprintf(b, "%s{app=%q,reason=%q} %d\n", rejections, u.AppID, reason, u.Rejected[reason])
		}
	}
}
