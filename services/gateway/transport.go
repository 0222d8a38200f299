package gateway

// Transport is one client connection as the gateway core sees it. Adapters
// wrap a WebSocket (and later SSE and long-polling); tests use a fake.
//
// WriteMany and Close are called by one goroutine at a time, the Client's
// writer, except Close(CloseAbort, ""), which may come from any goroutine.
type Transport interface {
	// WriteMany writes frames, each one complete protocol message, in
	// order, as one write where the transport allows. It returns an error
	// if the connection is broken or the write timed out.
	WriteMany(frames [][]byte) error
	// Close ends the connection with a close code and a short reason,
	// letting already written frames reach the client first.
	Close(code int, reason string) error
}
