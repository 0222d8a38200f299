// Package redistest holds what the Redis backends' tests share: a go-redis
// hook that records every command, so tests can check that every key and
// channel they touch is scoped by prefix and app.
package redistest

import (
	"context"
	"fmt"
	"slices"
	"sync"

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
