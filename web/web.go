package web

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
)

//go:embed static
var static embed.FS

// heraldJS is the Herald JS client (web/client), served at
// /client/herald.js for pages that import it without a package manager.
//
//go:embed client/herald.js
var heraldJS []byte

// securityHeaders are sent with every page: no framing, no sniffing, no
// referrer, and only same-origin resources.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
	"X-Frame-Options":         "DENY",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
}

// Routes serves the embedded pages under r.
func Routes(r fiber.Router) {
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	r.Get("/client/herald.js", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
		c.Set(fiber.HeaderCacheControl, "public, max-age=300")
		c.Set(fiber.HeaderAccessControlAllowOrigin, "*") // a module imported from the app's own origin
		c.Set("X-Content-Type-Options", "nosniff")
		return c.Send(heraldJS)
	})
	r.Use("/", func(c *fiber.Ctx) error {
		for k, v := range securityHeaders {
			c.Set(k, v)
		}
		return c.Next()
	}, filesystem.New(filesystem.Config{Root: http.FS(root), Index: "index.html", MaxAge: 300}))
}
