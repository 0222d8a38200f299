// Package web serves Herald's browser-facing pages from files embedded in
// the binary: for now the landing page that tells a visitor what runs here
// and how to connect; the admin console and the JS client join it later.
package web
