package authz

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/heraldrt/herald/tenants"
)

// PolicyVersion is one stored version of an app's channel policy.
type PolicyVersion struct {
	AppID    string `json:"app_id"`
	Version  int64  `json:"version"`
	Document string `json:"policy"`
	// Author is who made the change: the operator, a console user, or
	// "herald" for the default policy.
	Author    string    `json:"author"`
	CreatedAt time.Time `json:"created_at"`
}

// defaultVersion is the policy of an app that never had one stored.
func defaultVersion(appID string) PolicyVersion {
	return PolicyVersion{AppID: appID, Version: 0, Document: DefaultPolicy, Author: "herald"}
}

// PolicyStore keeps every version of each app's channel policy. Every
// method is safe for concurrent use; the app id scopes every lookup.
type PolicyStore interface {
	// Current returns the app's policy in force: its newest version, or
	// version 0 with DefaultPolicy if none was ever stored.
	Current(ctx context.Context, appID string) (PolicyVersion, error)
	// Replace validates doc and stores it as the app's next version,
	// recording author. An invalid document returns a *PolicyError and
	// stores nothing. Concurrent replaces get distinct, consecutive
	// versions. The postgres store returns tenants.ErrNotFound for an app
	// that does not exist; callers of the memory store check that first.
	Replace(ctx context.Context, appID, doc, author string) (PolicyVersion, error)
	// History returns up to limit versions, newest first.
	History(ctx context.Context, appID string, limit int) ([]PolicyVersion, error)
}

// MemoryPolicies is the embedded PolicyStore: one node, lost on restart
// like the rest of the embedded control plane.
type MemoryPolicies struct {
	mu       sync.Mutex
	versions map[string][]PolicyVersion // app id → versions, oldest first
}

var _ PolicyStore = (*MemoryPolicies)(nil)

// NewMemoryPolicies returns an empty store.
func NewMemoryPolicies() *MemoryPolicies {
	return &MemoryPolicies{versions: map[string][]PolicyVersion{}}
}

func (m *MemoryPolicies) Current(_ context.Context, appID string) (PolicyVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[appID]
	if len(vs) == 0 {
		return defaultVersion(appID), nil
	}
	return vs[len(vs)-1], nil
}

func (m *MemoryPolicies) Replace(_ context.Context, appID, doc, author string) (PolicyVersion, error) {
	if _, err := ParsePolicy(doc); err != nil {
		return PolicyVersion{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v := PolicyVersion{AppID: appID, Version: int64(len(m.versions[appID]) + 1), Document: doc, Author: author, CreatedAt: time.Now().UTC()}
	m.versions[appID] = append(m.versions[appID], v)
	return v, nil
}

func (m *MemoryPolicies) History(_ context.Context, appID string, limit int) ([]PolicyVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[appID]
	out := make([]PolicyVersion, 0, min(limit, len(vs)))
	for i := len(vs) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, vs[i])
	}
	return out, nil
}

// PostgresPolicies keeps policies in the app_policies table.
type PostgresPolicies struct{ pool *pgxpool.Pool }

var _ PolicyStore = (*PostgresPolicies)(nil)

// NewPostgresPolicies returns a store on pool; the schema comes from
// migrations.
func NewPostgresPolicies(pool *pgxpool.Pool) *PostgresPolicies { return &PostgresPolicies{pool: pool} }

const selectPolicy = `SELECT app_id, version, document, author, created_at FROM app_policies WHERE app_id = $1 ORDER BY version DESC LIMIT $2`

func (s *PostgresPolicies) Current(ctx context.Context, appID string) (PolicyVersion, error) {
	vs, err := s.History(ctx, appID, 1)
	if err != nil {
		return PolicyVersion{}, err
	}
	if len(vs) == 0 {
		return defaultVersion(appID), nil
	}
	return vs[0], nil
}

func (s *PostgresPolicies) History(ctx context.Context, appID string, limit int) ([]PolicyVersion, error) {
	rows, err := s.pool.Query(ctx, selectPolicy, appID, limit)
	if err != nil {
		return nil, fmt.Errorf("authz: read policy: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PolicyVersion])
	if err != nil {
		return nil, fmt.Errorf("authz: read policy: %w", err)
	}
	return vs, nil
}

func (s *PostgresPolicies) Replace(ctx context.Context, appID, doc, author string) (PolicyVersion, error) {
	if _, err := ParsePolicy(doc); err != nil {
		return PolicyVersion{}, err
	}
	var v PolicyVersion
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Locking the app row serialises replaces of one app, so versions
		// are consecutive without a retry loop.
		var id string
		if err := tx.QueryRow(ctx, `SELECT id FROM apps WHERE id = $1 FOR UPDATE`, appID).Scan(&id); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: app %s", tenants.ErrNotFound, appID)
			}
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO app_policies (app_id, version, document, author)
			SELECT $1, coalesce(max(version), 0) + 1, $2, $3 FROM app_policies WHERE app_id = $1
			RETURNING app_id, version, document, author, created_at`, appID, doc, author).
			Scan(&v.AppID, &v.Version, &v.Document, &v.Author, &v.CreatedAt)
	})
	if err != nil {
		if errors.Is(err, tenants.ErrNotFound) {
			return PolicyVersion{}, err
		}
		return PolicyVersion{}, fmt.Errorf("authz: store policy: %w", err)
	}
	return v, nil
}

// Policies serves each app's compiled policy to the subscribe path from
// memory. A compiled policy is reused until Invalidate says the app
// changed, and even then only recompiled if the stored version differs;
// MaxAge bounds how long a copy is trusted if an invalidation was lost
// (the backplane was down when the policy changed).
type Policies struct {
	store  PolicyStore
	maxAge time.Duration

	mu      sync.RWMutex // read-locked on every subscribe and client event
	entries map[string]*policyEntry
}

type policyEntry struct {
	policy  *Policy
	fetched time.Time
	stale   bool
}

// NewPolicies returns a cache over store; maxAge 0 means 60 s.
func NewPolicies(store PolicyStore, maxAge time.Duration) *Policies {
	if maxAge <= 0 {
		maxAge = 60 * time.Second
	}
	return &Policies{store: store, maxAge: maxAge, entries: map[string]*policyEntry{}}
}

// Store returns the underlying store.
func (p *Policies) Store() PolicyStore { return p.store }

// For returns the app's policy in force. Only a cache miss reads the
// store; a store failure with a compiled copy at hand serves that copy
// rather than refusing every subscription.
func (p *Policies) For(ctx context.Context, appID string) (*Policy, error) {
	p.mu.RLock()
	e := p.entries[appID]
	fresh := e != nil && !e.stale && time.Since(e.fetched) < p.maxAge
	p.mu.RUnlock()
	if fresh {
		return e.policy, nil
	}
	cur, err := p.store.Current(ctx, appID)
	if err != nil {
		if e != nil {
			return e.policy, nil
		}
		return nil, err
	}
	var compiled *Policy
	if e != nil && e.policy.Version() == cur.Version {
		compiled = e.policy
	} else if compiled, err = CompilePolicy(appID, cur.Document, cur.Version); err != nil {
		return nil, fmt.Errorf("authz: stored policy of app %s version %d: %w", appID, cur.Version, err)
	}
	p.mu.Lock()
	p.entries[appID] = &policyEntry{policy: compiled, fetched: time.Now()}
	p.mu.Unlock()
	return compiled, nil
}

// Invalidate marks the app's compiled policy as possibly out of date; the
// next For reads the store.
func (p *Policies) Invalidate(appID string) {
	p.mu.Lock()
	if e := p.entries[appID]; e != nil {
		e.stale = true
	}
	p.mu.Unlock()
}
