package gateway

// EventSink receives the channel lifecycle events that Pusher webhooks
// report. The gateway calls it synchronously from connection goroutines, so
// an implementation must only record the event and return (the webhook
// worker batches and delivers).
type EventSink interface {
	ChannelOccupied(appID, channel string)
	ChannelVacated(appID, channel string)
	MemberAdded(appID, channel, userID string)
	MemberRemoved(appID, channel, userID string)
	ClientEvent(appID, channel, event string, data []byte, socketID, userID string)
}

// noEvents is the sink used until webhooks are configured.
type noEvents struct{}

func (noEvents) ChannelOccupied(string, string)                             {}
func (noEvents) ChannelVacated(string, string)                              {}
func (noEvents) MemberAdded(string, string, string)                         {}
func (noEvents) MemberRemoved(string, string, string)                       {}
func (noEvents) ClientEvent(string, string, string, []byte, string, string) {}
