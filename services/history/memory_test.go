package history

import "testing"

func TestMemory(t *testing.T) {
	testStore(t, func(t *testing.T) Store {
		s := NewMemory()
		t.Cleanup(func() { s.Close() })
		return s
	})
}
