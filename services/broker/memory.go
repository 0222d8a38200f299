package broker

import (
	"context"
	"sync/atomic"
)

// Memory is the embedded broker: a single node, where publishing is a direct
// call of the node's own handler in the publisher's goroutine.
type Memory struct {
	handler atomic.Pointer[Handler]
	closed  atomic.Bool
}

var _ Broker = (*Memory)(nil)

// NewMemory returns a memory broker.
func NewMemory() *Memory { return &Memory{} }

func (m *Memory) Run(h Handler) error {
	m.handler.Store(&h)
	return nil
}

func (m *Memory) Publish(_ context.Context, appID, channel string, pub *Publication) error {
	h, err := m.live()
	if err != nil {
		return err
	}
	h.HandlePublication(appID, channel, pub)
	return nil
}

// Subscribe is free in memory: every publication reaches the one node.
func (m *Memory) Subscribe(context.Context, string, string) error { return nil }

func (m *Memory) Unsubscribe(context.Context, string, string) error { return nil }

func (m *Memory) PublishControl(_ context.Context, c Control) error {
	h, err := m.live()
	if err != nil {
		return err
	}
	h.HandleControl(c)
	return nil
}

// Ready is always true for the in-process broker.
func (m *Memory) Ready(context.Context) error {
	_, err := m.live()
	return err
}

func (m *Memory) Close() error {
	m.closed.Store(true)
	return nil
}

func (m *Memory) live() (Handler, error) {
	h := m.handler.Load()
	if m.closed.Load() || h == nil {
		return nil, ErrClosed
	}
	return *h, nil
}
