// Package redistest holds what the Redis backends' tests share: the test
// Redis, fresh key prefixes, and a go-redis hook that records every command
// so tests can check that every key and channel they touch is scoped by
// prefix and app.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// CommandLog is a go-redis hook that records every command's arguments.
// Add it with client.AddHook.
type CommandLog struct {
	mu   sync.Mutex
	cmds [][]string
}

var _ redis.Hook = (*CommandLog)(nil)

func (l *CommandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *CommandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.record(cmd)
		return next(ctx, cmd)
	}
}

func (l *CommandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			l.record(c)
		}
		return next(ctx, cmds)
	}
}

func (l *CommandLog) record(cmd redis.Cmder) {
	args := make([]string, len(cmd.Args()))
	for i, a := range cmd.Args() {
		args[i] = fmt.Sprint(a)
	}
	l.mu.Lock()
	l.cmds = append(l.cmds, args)
	l.mu.Unlock()
}

// Commands returns the recorded commands, each as its arguments in text.
func (l *CommandLog) Commands() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.cmds)
}

// URL returns HERALD_TEST_REDIS_URL, or skips the test without it (the test
// command always sets it; scripts/backends up starts a Redis).
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("HERALD_TEST_REDIS_URL")
	if u == "" {
		t.Skip("HERALD_TEST_REDIS_URL is not set: run through scripts/test, or eval \"$(scripts/backends up)\"")
	}
	return u
}

// Client returns a client of the Redis at url, closed when the test ends;
// tune may adjust its options.
func Client(t testing.TB, url string, tune ...func(*redis.Options)) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.ContextTimeoutEnabled = true
	for _, f := range tune {
		f(opts)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Prefix returns a fresh key prefix so tests sharing a Redis never meet.
// With a client, the prefix's keys are deleted when the test ends.
func Prefix(t testing.TB, client redis.UniversalClient) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "test" + hex.EncodeToString(b[:])
	if client != nil {
		t.Cleanup(func() {
			ctx := context.Background()
			iter := client.Scan(ctx, 0, prefix+":*", 100).Iterator()
			for iter.Next(ctx) {
				client.Del(ctx, iter.Val())
			}
			if err := iter.Err(); err != nil {
				t.Errorf("deleting test keys: %v", err)
			}
		})
	}
	return prefix
}
