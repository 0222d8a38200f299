package protocol

// Error and close codes of the Pusher protocol (reference §6). The comment on
// each says how pusher-js reacts, which is what decides when Herald uses it.
const (
	// CodeTLSRequired: the app accepts only TLS; pusher-js switches to wss.
	CodeTLSRequired = 4000
	// CodeAppNotFound: unknown app key; pusher-js stops for good.
	CodeAppNotFound = 4001
	// CodeAppDisabled: the app is disabled; pusher-js stops.
	CodeAppDisabled = 4003
	// CodeOverQuota: the app is over its connection quota; pusher-js stops.
	CodeOverQuota = 4004
	// CodePathNotFound: the path is not /app/{key}; pusher-js stops.
	CodePathNotFound = 4005
	// CodeUnsupportedProtocol: protocol version other than 5, 6 or 7.
	CodeUnsupportedProtocol = 4007
	// CodeNoProtocol: the protocol query parameter is missing.
	CodeNoProtocol = 4008
	// CodeUnauthorized: connection is unauthorized (terminated by the app);
	// pusher-js stops.
	CodeUnauthorized = 4009
	// CodeOverCapacity: server over capacity or the client is a slow
	// consumer; pusher-js retries after about a second.
	CodeOverCapacity = 4100
	// CodeReconnect: generic "reconnect now" (drain, max age); pusher-js
	// reconnects at once.
	CodeReconnect = 4200
	// CodePongTimeout: no answer to the server's ping; pusher-js reconnects
	// at once.
	CodePongTimeout = 4201
	// CodeClientEventRateLimit: client event over the rate limit. Sent only as
	// a pusher:error frame: as a close code (>= 4300) pusher-js would never
	// reconnect.
	CodeClientEventRateLimit = 4301
	// CodeWatchlistLimit: watchlist over 100 ids, the first 100 were kept.
	// Sent only as a pusher:error frame.
	CodeWatchlistLimit = 4302
)

// WebSocket close codes of RFC 6455 that Herald sends.
const (
	CloseNormal         = 1000
	CloseGoingAway      = 1001
	CloseUnsupported    = 1003 // binary frames are not part of the protocol
	CloseMessageTooBig  = 1009
	CloseInternalServer = 1011
)

// Reconnects reports whether pusher-js reconnects after a close with code
// (4000 included: it reconnects at once over TLS). Codes of 4300 and above
// are fatal for pusher-js, so Herald never closes a connection with one.
func Reconnects(code int) bool {
	return code < 4000 || code == CodeTLSRequired || (code >= 4100 && code < 4300)
}
