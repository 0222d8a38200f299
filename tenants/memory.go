package tenants

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// MemoryStore is the embedded Store: one node only, nothing survives a
// restart.
type MemoryStore struct {
	mu    sync.RWMutex
	byID  map[string]*App
	byKey map[string]*App
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{byID: map[string]*App{}, byKey: map[string]*App{}}
}

func (m *MemoryStore) AppByKey(_ context.Context, key string) (*App, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if a, ok := m.byKey[key]; ok {
		return a, nil
	}
	return nil, ErrNotFound
}

func (m *MemoryStore) AppByID(_ context.Context, id string) (*App, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if a, ok := m.byID[id]; ok {
		return a, nil
	}
	return nil, ErrNotFound
}

func (m *MemoryStore) Apps(context.Context) ([]*App, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	apps := make([]*App, 0, len(m.byID))
	for _, a := range m.byID {
		apps = append(apps, a)
	}
	slices.SortFunc(apps, func(a, b *App) int { return strings.Compare(a.ID, b.ID) })
	return apps, nil
}

func (m *MemoryStore) PutApp(_ context.Context, app *App) error {
	a := *app
	a.Keys = slices.Clone(app.Keys)
	if p := app.Settings.Features.ClientEvents; p != nil {
		on := *p // the caller's pointer must not reach the stored app
		a.Settings.Features.ClientEvents = &on
	}
	if err := a.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range a.Keys {
		if other, ok := m.byKey[k.Key]; ok && other.ID != a.ID {
			return fmt.Errorf("%w: key %q belongs to another app", ErrConflict, k.Key)
		}
	}
	if old, ok := m.byID[a.ID]; ok {
		for _, k := range old.Keys {
			delete(m.byKey, k.Key)
		}
	}
	m.byID[a.ID] = &a
	for _, k := range a.Keys {
		m.byKey[k.Key] = &a
	}
	return nil
}
