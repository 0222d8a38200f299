package tenants

import "context"

// Store holds apps. Every method is safe for concurrent use. Returned apps
// must not be modified: change an app by putting a new value.
type Store interface {
	// AppByKey returns the app that owns key, or ErrNotFound. Keys are
	// unique across all apps.
	AppByKey(ctx context.Context, key string) (*App, error)
	// AppByID returns the app with id, or ErrNotFound.
	AppByID(ctx context.Context, id string) (*App, error)
	// Apps returns every app, ordered by id.
	Apps(ctx context.Context) ([]*App, error)
	// PutApp validates app and creates or replaces it. It returns
	// ErrConflict if one of its keys belongs to another app, and ErrInvalid
	// (wrapped, naming the field) if it does not validate.
	PutApp(ctx context.Context, app *App) error
}
