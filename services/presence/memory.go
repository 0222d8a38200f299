package presence

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// Memory is the embedded presence store: one node only.
type Memory struct {
	mu       sync.Mutex
	channels map[channelKey]map[string]*user // by user id
}

var _ Store = (*Memory)(nil)

type channelKey struct{ appID, channel string }

type user struct {
	info  []byte
	conns []string // connection ids, in join order
}

// NewMemory returns an empty store.
func NewMemory() *Memory { return &Memory{channels: map[channelKey]map[string]*user{}} }

func (m *Memory) Join(_ context.Context, appID, channel, connID string, mem Member, maxMembers int) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := channelKey{appID, channel}
	users := m.channels[k]
	if u, ok := users[mem.UserID]; ok {
		if !slices.Contains(u.conns, connID) {
			u.conns = append(u.conns, connID)
		}
		return false, nil
	}
	if maxMembers > 0 && len(users) >= maxMembers {
		return false, ErrFull
	}
	if users == nil {
		users = map[string]*user{}
		m.channels[k] = users
	}
	users[mem.UserID] = &user{info: slices.Clone(mem.UserInfo), conns: []string{connID}}
	return true, nil
}

func (m *Memory) Leave(_ context.Context, appID, channel, connID, userID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := channelKey{appID, channel}
	u, ok := m.channels[k][userID]
	if !ok {
		return false, nil
	}
	i := slices.Index(u.conns, connID)
	if i < 0 {
		return false, nil
	}
	u.conns = slices.Delete(u.conns, i, i+1)
	if len(u.conns) > 0 {
		return false, nil
	}
	delete(m.channels[k], userID)
	if len(m.channels[k]) == 0 {
		delete(m.channels, k)
	}
	return true, nil
}

func (m *Memory) Members(_ context.Context, appID, channel string) ([]Member, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	users := m.channels[channelKey{appID, channel}]
	out := make([]Member, 0, len(users))
	for id, u := range users {
		out = append(out, Member{UserID: id, UserInfo: slices.Clone(u.info)})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

func (m *Memory) Count(_ context.Context, appID, channel string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.channels[channelKey{appID, channel}]), nil
}

// Heartbeat is free in memory: entries live as long as the process.
func (m *Memory) Heartbeat(context.Context, string, string, map[string]Member) ([]Member, error) {
	return nil, nil
}

// Expire finds nothing in memory: entries never outlive their node.
func (m *Memory) Expire(context.Context, string, string) ([]string, error) { return nil, nil }

// MemoryOccupancy is the embedded Occupancy: one node only.
type MemoryOccupancy struct {
	mu     sync.Mutex
	counts map[channelKey]int
}

var _ Occupancy = (*MemoryOccupancy)(nil)

// NewMemoryOccupancy returns an empty counter.
func NewMemoryOccupancy() *MemoryOccupancy {
	return &MemoryOccupancy{counts: map[channelKey]int{}}
}

func (o *MemoryOccupancy) Add(_ context.Context, appID, channel string, delta int) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := channelKey{appID, channel}
	if n := o.counts[k] + delta; n > 0 {
		o.counts[k] = n
	} else {
		delete(o.counts, k)
	}
	return nil
}

func (o *MemoryOccupancy) Counts(_ context.Context, appID, prefix string) (map[string]int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for k, n := range o.counts {
		if k.appID == appID && strings.HasPrefix(k.channel, prefix) {
			out[k.channel] = n
		}
	}
	return out, nil
}

func (o *MemoryOccupancy) Count(_ context.Context, appID, channel string) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[channelKey{appID, channel}], nil
}

func (o *MemoryOccupancy) ByNode(_ context.Context, appID, name string) (map[string]int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if n := o.counts[channelKey{appID, name}]; n > 0 {
		return map[string]int{"local": n}, nil
	}
	return map[string]int{}, nil
}

func (o *MemoryOccupancy) Acquire(_ context.Context, appID, name string, limit int) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := channelKey{appID, name}
	if limit > 0 && o.counts[k] >= limit {
		return false, nil
	}
	o.counts[k]++
	return true, nil
}
