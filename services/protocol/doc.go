// Package protocol owns the Pusher Channels protocol v7 as spoken on the
// wire: the client-frame decoder, the append-style frame encoder, channel
// name rules and types, and the table of error and close codes.
//
// It imports only the standard library and does no I/O. The decoder and the
// encoder do not allocate on their success paths: the gateway calls them once
// per inbound frame and once per publish, and hands the encoded bytes to every
// subscriber unchanged.
package protocol
