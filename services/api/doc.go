// Package api serves the Pusher-compatible REST API (/apps/{app_id}/...)
// and the node's health endpoints. Every route is listed in Routes; every
// error becomes an HTTP status and a JSON body {"error": "..."} in one place
// (errors.go). Requests are authenticated with Pusher signatures verified by
// authz before a handler runs, and handlers read only the verified query.
package api
