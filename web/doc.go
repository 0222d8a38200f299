// Package web serves Herald's browser-facing pages from files embedded in
// the binary: the landing page that tells a visitor what runs here and how
// to connect, and the admin console under /console.
//
// The console is server-rendered HTML forms without scripts. Every page is
// behind a session; every form carries the session's CSRF token. Access is
// decided per tenant by authz.ConsoleRBAC before any handler runs (see
// consoleRoutes): a tenant or app the user may not view answers 404, an
// action the role may not take 403. Every change goes through the
// api.Manager, as the management API's do, so it is validated, announced
// to every node and recorded in the audit log under the signed-in user.
package web
