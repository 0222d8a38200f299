package tenants

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryUsers is the embedded Users: one node only, nothing survives a
// restart. Like PostgresUsers it keeps only the SHA-256 of session ids.
type MemoryUsers struct {
	tenants Store

	mu       sync.RWMutex
	users    map[string]*User           // by id; never modified, replaced on change
	byEmail  map[string]string          // normalised email → user id
	members  map[string]map[string]Role // tenant id → user id → role
	sessions map[[sha256.Size]byte]Session
	invites  map[[sha256.Size]byte]*memoryInvite // by token hash
}

var _ Users = (*MemoryUsers)(nil)

// NewMemoryUsers returns an empty store whose memberships may name the
// tenants of tenants.
func NewMemoryUsers(tenants Store) *MemoryUsers {
	return &MemoryUsers{tenants: tenants, users: map[string]*User{}, byEmail: map[string]string{},
		members: map[string]map[string]Role{}, sessions: map[[sha256.Size]byte]Session{}}
}

func (m *MemoryUsers) CreateUser(_ context.Context, u *User) error {
	if err := prepareUser(u); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byEmail[u.Email]; ok {
		return fmt.Errorf("%w: email %q is taken", ErrConflict, u.Email)
	}
	if _, ok := m.users[u.ID]; ok {
		return fmt.Errorf("%w: user id %s is taken", ErrConflict, u.ID)
	}
	c := *u
	m.users[u.ID] = &c
	m.byEmail[u.Email] = u.ID
	return nil
}

func (m *MemoryUsers) UserByEmail(_ context.Context, email string) (*User, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if id, ok := m.byEmail[normalizeEmail(email)]; ok {
		c := *m.users[id]
		return &c, nil
	}
	return nil, ErrNotFound
}

func (m *MemoryUsers) UserByID(_ context.Context, id string) (*User, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if u, ok := m.users[id]; ok {
		c := *u
		return &c, nil
	}
	return nil, ErrNotFound
}

func (m *MemoryUsers) ListUsers(context.Context) ([]*User, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*User, 0, len(m.users))
	for _, u := range m.users {
		c := *u
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *User) int { return strings.Compare(a.Email, b.Email) })
	return out, nil
}

// changeUser replaces the user with a changed copy; the caller holds m.mu.
func (m *MemoryUsers) changeUser(id string, change func(*User)) error {
	u, ok := m.users[id]
	if !ok {
		return ErrNotFound
	}
	c := *u
	change(&c)
	m.users[id] = &c
	return nil
}

func (m *MemoryUsers) SetPassword(_ context.Context, userID, hash string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.changeUser(userID, func(u *User) { u.PasswordHash = hash }); err != nil {
		return err
	}
	m.deleteUserSessions(userID)
	return nil
}

func (m *MemoryUsers) SetPlatformAdmin(_ context.Context, userID string, admin bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changeUser(userID, func(u *User) { u.PlatformAdmin = admin })
}

func (m *MemoryUsers) Memberships(_ context.Context, userID string) ([]Membership, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := []Membership{}
	for tenantID, roles := range m.members {
		if role, ok := roles[userID]; ok {
			out = append(out, Membership{UserID: userID, TenantID: tenantID, Role: role})
		}
	}
	slices.SortFunc(out, func(a, b Membership) int { return strings.Compare(a.TenantID, b.TenantID) })
	return out, nil
}

func (m *MemoryUsers) Members(_ context.Context, tenantID string) ([]Membership, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Membership, 0, len(m.members[tenantID]))
	for userID, role := range m.members[tenantID] {
		out = append(out, Membership{UserID: userID, TenantID: tenantID, Role: role})
	}
	slices.SortFunc(out, func(a, b Membership) int { return strings.Compare(a.UserID, b.UserID) })
	return out, nil
}

func (m *MemoryUsers) SetMembership(ctx context.Context, ms Membership) error {
	if !ms.Role.Valid() {
		return fmt.Errorf("%w: role %q must be %s, %s or %s", ErrInvalid, ms.Role, RoleOwner, RoleOperator, RoleViewer)
	}
	// Tenants are never deleted, so the tenant found here still exists
	// once the lock is held.
	if _, err := m.tenants.Tenant(ctx, ms.TenantID); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: tenant %q", ErrNotFound, ms.TenantID)
	} else if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[ms.UserID]; !ok {
		return fmt.Errorf("%w: user %q", ErrNotFound, ms.UserID)
	}
	if ms.Role != RoleOwner && isLastOwner(m.members[ms.TenantID], ms.UserID) {
		return lastOwnerError(ms.UserID, ms.TenantID)
	}
	if m.members[ms.TenantID] == nil {
		m.members[ms.TenantID] = map[string]Role{}
	}
	m.members[ms.TenantID][ms.UserID] = ms.Role
	return nil
}

func (m *MemoryUsers) RemoveMembership(_ context.Context, userID, tenantID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.members[tenantID][userID]; !ok {
		return fmt.Errorf("%w: user %q is not a member of tenant %q", ErrNotFound, userID, tenantID)
	}
	if isLastOwner(m.members[tenantID], userID) {
		return lastOwnerError(userID, tenantID)
	}
	delete(m.members[tenantID], userID)
	return nil
}

func (m *MemoryUsers) CreateSession(_ context.Context, s Session) error {
	if err := prepareSession(&s); err != nil {
		return err
	}
	key := sessionKey(s.ID)
	s.ID = "" // only the hash is kept
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[s.UserID]; !ok {
		return fmt.Errorf("%w: user %q", ErrNotFound, s.UserID)
	}
	// Nothing else removes sessions that expire unused; sign-ins are rare
	// enough to pay for the sweep.
	t := time.Now()
	for k, old := range m.sessions {
		if !t.Before(old.ExpiresAt) {
			delete(m.sessions, k)
		}
	}
	if _, ok := m.sessions[key]; ok {
		return fmt.Errorf("%w: session id is taken", ErrConflict)
	}
	m.sessions[key] = s
	return nil
}

// liveSession returns the stored session with raw id if it has not
// expired; the caller holds m.mu.
func (m *MemoryUsers) liveSession(id string) (key [sha256.Size]byte, s Session, ok bool) {
	key = sessionKey(id)
	s, ok = m.sessions[key]
	if !ok || !time.Now().Before(s.ExpiresAt) {
		return key, Session{}, false
	}
	return key, s, true
}

func (m *MemoryUsers) Session(_ context.Context, id string) (*Session, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, s, ok := m.liveSession(id)
	if !ok {
		return nil, ErrNotFound
	}
	s.ID = id
	return &s, nil
}

func (m *MemoryUsers) TouchSession(_ context.Context, id string, lastSeen time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key, s, ok := m.liveSession(id)
	if !ok {
		return ErrNotFound
	}
	if lastSeen = lastSeen.Truncate(time.Microsecond); lastSeen.After(s.LastSeen) {
		s.LastSeen = lastSeen
		m.sessions[key] = s
	}
	return nil
}

func (m *MemoryUsers) DeleteSession(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, sessionKey(id))
	return nil
}

func (m *MemoryUsers) DeleteUserSessions(_ context.Context, userID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deleteUserSessions(userID)
	return nil
}

// deleteUserSessions deletes the user's sessions; the caller holds m.mu.
func (m *MemoryUsers) deleteUserSessions(userID string) {
	for k, s := range m.sessions {
		if s.UserID == userID {
			delete(m.sessions, k)
		}
	}
}

// memoryInvite is a stored invite and whether it was used.
type memoryInvite struct {
	Invite
	used bool
}

func (m *MemoryUsers) CreateInvite(ctx context.Context, inv Invite) error {
	if err := prepareInvite(&inv); err != nil {
		return err
	}
	if _, err := m.tenants.Tenant(ctx, inv.TenantID); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: tenant %q", ErrNotFound, inv.TenantID)
	} else if err != nil {
		return err
	}
	key := inviteKey(inv.Token)
	inv.Token = "" // only the hash is kept
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.invites == nil {
		m.invites = map[[sha256.Size]byte]*memoryInvite{}
	}
	if _, ok := m.invites[key]; ok {
		return fmt.Errorf("%w: invite token is taken", ErrConflict)
	}
	m.invites[key] = &memoryInvite{Invite: inv}
	return nil
}

// pendingInvite returns the invite of token if it is neither used nor
// expired at now; the caller holds m.mu.
func (m *MemoryUsers) pendingInvite(token string, now time.Time) (*memoryInvite, bool) {
	inv, ok := m.invites[inviteKey(token)]
	if !ok || inv.used || !now.Before(inv.ExpiresAt) {
		return nil, false
	}
	return inv, true
}

func (m *MemoryUsers) Invite(_ context.Context, token string, now time.Time) (*Invite, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	inv, ok := m.pendingInvite(token, now)
	if !ok {
		return nil, ErrNotFound
	}
	c := inv.Invite
	c.Token = token
	return &c, nil
}

func (m *MemoryUsers) ConsumeInvite(_ context.Context, token string, now time.Time) (*Invite, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inv, ok := m.pendingInvite(token, now)
	if !ok {
		return nil, ErrNotFound
	}
	inv.used = true
	c := inv.Invite
	c.Token = token
	return &c, nil
}

func (m *MemoryUsers) Invites(_ context.Context, tenantID string) ([]Invite, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	now := time.Now()
	out := []Invite{}
	for _, inv := range m.invites {
		if inv.TenantID == tenantID && !inv.used && now.Before(inv.ExpiresAt) {
			out = append(out, inv.Invite)
		}
	}
	slices.SortFunc(out, func(a, b Invite) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Email, b.Email)
	})
	return out, nil
}
