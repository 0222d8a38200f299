// Package authz decides who may do what: it verifies Pusher signatures
// (channel tokens, user sign-in tokens and signed REST requests), always in
// constant time and always against a secret looked up by (app, key). Casbin
// channel policies, console roles and rate limiting join it later.
package authz
