package gateway

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/services/broker"
)

// socketFake is a transport that can write without blocking until its
// "socket" is full; then it keeps the rest pending like a real socket would.
type socketFake struct {
	*fakeTransport
	full    atomic.Bool
	pending [][]byte
	tries   atomic.Int32
	gate    chan struct{} // when set, TryWriteMany waits on it
}

func (s *socketFake) TryWriteMany(frames [][]byte) (bool, error) {
	s.tries.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if s.full.Load() {
		for _, f := range frames {
			s.pending = append(s.pending, append([]byte(nil), f...))
		}
		return false, nil
	}
	return true, s.fakeTransport.WriteMany(frames)
}

func (s *socketFake) WriteMany(frames [][]byte) error {
	all := append(s.pending, frames...)
	s.pending = nil
	return s.fakeTransport.WriteMany(all)
}

func connectSocket(t *testing.T, n *Node) (*conn, *socketFake) {
	t.Helper()
	sf := &socketFake{fakeTransport: newFake()}
	return connectWith(t, n, "key", sf, sf.fakeTransport), sf
}

// A client whose socket is full is handed to a writer goroutine of its own:
// it gets everything, in order, and a client sharing its flusher is not held
// up while that goroutine blocks.
func TestFlusherHandsFullSocketToWriter(t *testing.T) {
	n := testNode(t, Config{}, testApp(t, "1", "key"))
	n.flushers = n.flushers[:1] // both clients on the same flusher
	stuck, stuckSock := connectSocket(t, n)
	other, _ := connectSocket(t, n)
	for _, cn := range []*conn{stuck, other} {
		cn.send(`{"event":"pusher:subscribe","data":{"channel":"c"}}`)
		cn.t.waitEvent(t, "pusher_internal:subscription_succeeded")
	}
	stuckSock.full.Store(true)
	stuck.t.block = make(chan struct{}) // the blocking write waits too
	for i := range 5 {
		if err := publishTo(n, "1", "c", broker.Publication{Event: fmt.Sprint("e", i), Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	other.t.waitEvent(t, "e4")
	close(stuck.t.block)
	stuck.t.waitEvent(t, "e4")
	var got []string
	for _, e := range stuck.t.events(t) {
		if name := e["event"].(string); name[0] == 'e' {
			got = append(got, name)
		}
	}
	if fmt.Sprint(got) != "[e0 e1 e2 e3 e4]" {
		t.Errorf("stuck client got %v, want e0..e4 in order", got)
	}
}

// Frames queued while a connection waits for its flusher's next pass go out
// in one write.
func TestFlusherCoalesces(t *testing.T) {
	n := testNode(t, Config{}, testApp(t, "1", "key"))
	cn, sock := connectSocket(t, n)
	cn.t.waitEvent(t, "pusher:connection_established")
	sock.gate = make(chan struct{})
	before := sock.tries.Load()
	cn.c.Enqueue([]byte(`{"event":"a","data":"1"}`)) // the flusher takes it and waits at the gate
	for sock.tries.Load() == before {
		time.Sleep(time.Millisecond)
	}
	for range 10 {
		cn.c.Enqueue([]byte(`{"event":"b","data":"1"}`))
	}
	close(sock.gate)
	deadline := time.Now().Add(2 * time.Second)
	for cn.t.count(t, "b") < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if tries := sock.tries.Load() - before; tries != 2 {
		t.Errorf("%d writes for a frame then 10 queued frames, want 2", tries)
	}
}
