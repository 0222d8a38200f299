package broker

import (
	"context"
	"sync"
	"sync/atomic"
)

// Memory is the embedded broker: a single node, where publishing is a direct
// call of the node's own handler in the publisher's goroutine.
type Memory struct {
	handler atomic.Pointer[Handler]
	closed  atomic.Bool

	mu   sync.RWMutex
	subs map[memoryKey]struct{}
}

var _ Broker = (*Memory)(nil)

type memoryKey struct{ appID, channel string }

// NewMemory returns a memory broker.
func NewMemory() *Memory { return &Memory{subs: map[memoryKey]struct{}{}} }

func (m *Memory) Run(h Handler) error {
	m.handler.Store(&h)
	return nil
}

// Publish calls the handler only for subscribed channels, as a Redis node
// would receive only those.
func (m *Memory) Publish(_ context.Context, appID, channel string, pub *Publication) error {
	h, err := m.live()
	if err != nil {
		return err
	}
	m.mu.RLock()
	_, ok := m.subs[memoryKey{appID, channel}]
	m.mu.RUnlock()
	if ok {
		h.HandlePublication(appID, channel, pub)
	}
	return nil
}

func (m *Memory) Subscribe(_ context.Context, appID, channel string) error {
	if _, err := m.live(); err != nil {
		return err
	}
	m.mu.Lock()
	m.subs[memoryKey{appID, channel}] = struct{}{}
	m.mu.Unlock()
	return nil
}

func (m *Memory) Unsubscribe(_ context.Context, appID, channel string) error {
	if _, err := m.live(); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.subs, memoryKey{appID, channel})
	m.mu.Unlock()
	return nil
}

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
