package broker

import (
	"context"
	"sync"
	"sync/atomic"
)

// Memory is the embedded broker: a single node. Publications go through one
// dispatcher goroutine, as they would through Redis: a publisher returns as
// soon as its publication is queued, the fan-out of concurrent publishers
// does not contend for the same connections, and each channel is delivered
// in publish order.
type Memory struct {
	handler atomic.Pointer[Handler]
	closed  atomic.Bool
	queue   chan delivery
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu   sync.RWMutex
	subs map[memoryKey]struct{}
}

var _ Broker = (*Memory)(nil)

type memoryKey struct{ appID, channel string }

// delivery is one queued publication or control message.
type delivery struct {
	key     memoryKey
	pub     *Publication
	control Control
}

// memoryQueue bounds the publications waiting for the dispatcher; a full
// queue makes publishers wait (up to their deadline) instead of growing.
const memoryQueue = 4096

// NewMemory returns a memory broker.
func NewMemory() *Memory {
	return &Memory{subs: map[memoryKey]struct{}{}, queue: make(chan delivery, memoryQueue),
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (m *Memory) Run(h Handler) error {
	m.handler.Store(&h)
	go m.dispatch(h)
	return nil
}

func (m *Memory) dispatch(h Handler) {
	defer close(m.done)
	for {
		select {
		case <-m.stop:
			return
		case d := <-m.queue:
			if d.pub == nil {
				h.HandleControl(d.control)
			} else if m.subscribed(d.key) {
				h.HandlePublication(d.key.appID, d.key.channel, d.pub)
			}
		}
	}
}

func (m *Memory) subscribed(k memoryKey) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.subs[k]
	return ok
}

// Publish queues pub for the node if the channel is subscribed, as a Redis
// node would receive only those.
func (m *Memory) Publish(ctx context.Context, appID, channel string, pub *Publication) error {
	if _, err := m.live(); err != nil {
		return err
	}
	k := memoryKey{appID, channel}
	if !m.subscribed(k) {
		return nil
	}
	return m.enqueue(ctx, delivery{key: k, pub: pub})
}

func (m *Memory) enqueue(ctx context.Context, d delivery) error {
	select {
	case m.queue <- d:
		return nil
	case <-m.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
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

func (m *Memory) PublishControl(ctx context.Context, c Control) error {
	if _, err := m.live(); err != nil {
		return err
	}
	return m.enqueue(ctx, delivery{control: c})
}

// Ready is always true for the in-process broker until it is closed.
func (m *Memory) Ready(context.Context) error {
	_, err := m.live()
	return err
}

func (m *Memory) Close() error {
	m.once.Do(func() {
		m.closed.Store(true)
		close(m.stop)
		if m.handler.Load() != nil {
			<-m.done
		}
	})
	return nil
}

func (m *Memory) live() (Handler, error) {
	h := m.handler.Load()
	if m.closed.Load() || h == nil {
		return nil, ErrClosed
	}
	return *h, nil
}
