package gateway

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/services/broker"
	"github.com/heraldrt/herald/services/presence"
	"github.com/heraldrt/herald/tenants"
)

// fakeTransport records what the writer hands it.
type fakeTransport struct {
	mu      sync.Mutex
	frames  [][]byte
	writes  int
	closed  bool
	code    int
	block   chan struct{} // when set, WriteMany waits on it
	arrived chan struct{} // signalled after every write
	discard bool          // count writes without keeping frames
	last    []byte        // the last frame written, kept even when discarding
	gone    chan struct{} // closed by Close, ending the reader as a real socket would
}

func newFake() *fakeTransport {
	return &fakeTransport{arrived: make(chan struct{}, 1), gone: make(chan struct{})}
}

func (f *fakeTransport) WriteMany(frames [][]byte) error {
	if f.block != nil {
		<-f.block
	}
	f.mu.Lock()
	f.writes++
	if len(frames) > 0 {
		f.last = frames[len(frames)-1]
	}
	if !f.discard {
		for _, fr := range frames {
			f.frames = append(f.frames, append([]byte(nil), fr...))
		}
	}
	f.mu.Unlock()
	select {
	case f.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeTransport) Close(code int, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed, f.code = true, code
		close(f.gone)
	}
	return nil
}

// events returns the decoded frames written so far.
func (f *fakeTransport) events(t *testing.T) []map[string]any {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]map[string]any, len(f.frames))
	for i, fr := range f.frames {
		if err := json.Unmarshal(fr, &out[i]); err != nil {
			t.Fatalf("frame %d is not JSON: %s", i, fr)
		}
	}
	return out
}

// waitEvent waits until a frame with event name appears and returns it.
func (f *fakeTransport) waitEvent(t *testing.T, name string) map[string]any {
	t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		for _, e := range f.events(t) {
			if e["event"] == name {
				return e
			}
		}
		select {
		case <-f.arrived:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s frame; got %v", name, f.events(t))
		}
	}
}

func (f *fakeTransport) count(t *testing.T, name string) int {
	n := 0
	for _, e := range f.events(t) {
		if e["event"] == name {
			n++
		}
	}
	return n
}

func testApp(t testing.TB, id, key string) *tenants.App {
	t.Helper()
	a := &tenants.App{ID: id, Name: id, Enabled: true, Keys: []tenants.Key{{Key: key, Secret: tenants.NewSecret("secret-" + id)}}}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return a
}

func testNode(t testing.TB, cfg Config, apps ...*tenants.App) *Node {
	t.Helper()
	store := tenants.NewMemoryStore()
	for _, a := range apps {
		if err := store.PutApp(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	n, err := NewNode(cfg, Deps{Apps: store, Broker: broker.NewMemory(), Presence: presence.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("node close: %v", err)
		}
	})
	return n
}

// conn is a connected fake client whose reader runs frames pushed with send.
type conn struct {
	c     *Client
	t     *fakeTransport
	in    chan []byte
	ended chan struct{}
}

func connect(t testing.TB, n *Node, key string) *conn {
	t.Helper()
	ft := newFake()
	return connectWith(t, n, key, ft, ft)
}

// connectWith connects transport (whose recording side is ft) and runs its
// reader on frames pushed with send.
func connectWith(t testing.TB, n *Node, key string, transport Transport, ft *fakeTransport) *conn {
	t.Helper()
	c, err := n.Connect(context.Background(), key, "7", transport)
	if err != nil {
		t.Fatal(err)
	}
	cn := &conn{c: c, t: ft, in: make(chan []byte), ended: make(chan struct{})}
	go func() {
		defer close(cn.ended)
		n.Serve(c, func() ([]byte, error) {
			select {
			case b, ok := <-cn.in:
				if !ok {
					return nil, errEnded
				}
				return b, nil
			case <-ft.gone:
				return nil, errEnded
			}
		})
	}()
	return cn
}

var errEnded = context.Canceled

func (cn *conn) send(frame string) {
	select {
	case cn.in <- []byte(frame):
	case <-cn.ended:
	}
}

// hangUp ends the connection as a client disconnect would.
func (cn *conn) hangUp() {
	select {
	case <-cn.ended:
	default:
		close(cn.in)
		<-cn.ended
	}
}

// publishTo publishes one event as the app's backend would.
func publishTo(n *Node, appID, channel string, pub broker.Publication) error {
	app, err := n.apps.AppByID(context.Background(), appID)
	if err != nil {
		return err
	}
	return n.Publish(context.Background(), app, []Outgoing{{Channel: channel, Pub: pub}})
}
