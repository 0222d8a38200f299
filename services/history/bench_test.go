package history

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/dbtest"
)

// publishers is how many goroutines append at once in the Append
// benchmarks, as the API handlers of a busy node would.
const publishers = 64

func BenchmarkPostgresAppend(b *testing.B) {
	benchAppend(b, func(b *testing.B) Store { return newPostgres(b, dbtest.Migrated(b)) })
}

func BenchmarkMemoryAppend(b *testing.B) { benchAppend(b, newMemory) }

func BenchmarkPostgresRead1000(b *testing.B) {
	benchRead(b, newPostgres(b, dbtest.Migrated(b)))
}

func BenchmarkMemoryRead1000(b *testing.B) { benchRead(b, newMemory(b)) }

func newMemory(b *testing.B) Store {
	s := NewMemory()
	b.Cleanup(func() { s.Close() })
	return s
}

// benchAppend appends one event per call from 64 publishers, to one
// channel and spread over 1000, and reports messages per second and the
// latency of Append.
func benchAppend(b *testing.B, newStore func(b *testing.B) Store) {
	for _, channels := range []int{1, 1000} {
		b.Run(fmt.Sprintf("channels=%d", channels), func(b *testing.B) {
			s := newStore(b)
			names := make([]string, channels)
			for i := range names {
				names[i] = fmt.Sprintf("bench-%d", i)
			}
			data := []byte(`{"message":"hello world, this is a one hundred byte payload for the history benchmark...."}`)
			var (
				next      atomic.Int64
				mu        sync.Mutex
				latencies []time.Duration
			)
			b.SetParallelism(max(1, publishers/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					a := Append{AppID: "bench", Channel: names[next.Add(1)%int64(channels)], Event: "e", Data: data,
						Retention: Retention{MaxEvents: 1000, MaxAge: time.Hour}}
					start := time.Now()
					if _, err := s.Append(context.Background(), []Append{a}); err != nil {
						b.Error(err)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				latencies = append(latencies, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			if len(latencies) == 0 {
				return
			}
			slices.Sort(latencies)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(latencies[len(latencies)/2].Seconds()*1000, "p50-ms")
			b.ReportMetric(latencies[len(latencies)*99/100].Seconds()*1000, "p99-ms")
		})
	}
}

// benchRead reads 1000 events missed by a subscriber, as a reconnect does.
func benchRead(b *testing.B, s Store) {
	data := []byte(`{"message":"hello world, this is a one hundred byte payload for the history benchmark...."}`)
	events := make([]Append, 100)
	for i := range events {
		events[i] = Append{AppID: "bench", Channel: "c", Event: "e", Data: data}
	}
	for range 11 { // 1100 events; the read skips the first 100
		mustAppend(b, s, events...)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		page, err := s.Read(context.Background(), "bench", "c", 100, 1000)
		if err != nil || len(page.Events) != 1000 {
			b.Fatalf("read %d events, %v", len(page.Events), err)
		}
	}
}
