package gateway

import (
	"runtime"
	"sync"
)

// NonBlockingWriter is implemented by transports that can attempt a write
// without blocking (a plain socket). Such clients are written by the node's
// flushers: a few goroutines that each serve many connections, so that a
// busy node coalesces every frame queued for a connection between two
// passes into one write, and an idle connection needs no writer at all.
type NonBlockingWriter interface {
	// TryWriteMany writes frames after any bytes left over from an earlier
	// attempt, without blocking. flushed is false if the socket could not
	// take everything: the transport keeps the rest, and the next WriteMany
	// call (which may block) sends it first.
	TryWriteMany(frames [][]byte) (flushed bool, err error)
}

// flusher writes the queues of the clients scheduled on it, one pass over
// its dirty list at a time.
type flusher struct {
	mu    sync.Mutex
	dirty []*Client
	spare []*Client
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

func newFlusher() *flusher {
	f := &flusher{kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f
}

// schedule adds c to the next pass. The caller holds c.mu and has set
// c.scheduled, so a client is on the list at most once.
func (f *flusher) schedule(c *Client) {
	f.mu.Lock()
	f.dirty = append(f.dirty, c)
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *flusher) run() {
	defer close(f.done)
	for {
		select {
		case <-f.stop:
			return
		case <-f.kick:
		}
		for {
			f.mu.Lock()
			batch := f.dirty
			f.dirty, f.spare = f.spare[:0], nil
			f.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, c := range batch {
				c.flush()
			}
			clear(batch)
			// A pass can take milliseconds of system calls; let the
			// goroutines that produce frames run before the next one.
			runtime.Gosched()
			f.mu.Lock()
			f.spare = batch[:0]
			f.mu.Unlock()
		}
	}
}

func (f *flusher) close() {
	close(f.stop)
	<-f.done
}
