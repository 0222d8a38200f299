package tenants

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// AppConfig is one entry of HERALD_APPS or --apps-file: an app with a single
// key, in the JSON shape the management API uses for apps.
type AppConfig struct {
	ID       string   `json:"id"`
	Key      string   `json:"key"`
	Secret   Secret   `json:"secret"`
	Name     string   `json:"name"`
	Enabled  *bool    `json:"enabled,omitempty"`
	Settings Settings `json:"settings"`
	// Policy is the app's channel policy document; checked and stored by
	// the caller, since policies belong to authz.
	Policy *string `json:"policy,omitempty"`
}

// ParseAppConfigs decodes a JSON array of AppConfig and validates every
// entry. Unknown fields are rejected so that a typo in a limit's name is an
// error rather than a silently ignored setting. Errors name the entry and
// the field. The policies given are returned by app id.
func ParseAppConfigs(data []byte) ([]*App, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var entries []AppConfig
	if err := dec.Decode(&entries); err != nil {
		return nil, nil, fmt.Errorf("apps must be a JSON array of {\"id\",\"key\",\"secret\",\"name\",\"enabled\",\"settings\",\"policy\"}: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		// A second array (or any text) after the first would be ignored.
		return nil, nil, fmt.Errorf("apps: unexpected data after the JSON array")
	}
	apps := make([]*App, 0, len(entries))
	policies := map[string]string{}
	ids, keys := map[string]bool{}, map[string]bool{}
	for i, e := range entries {
		a := &App{ID: e.ID, Name: e.Name, Enabled: e.Enabled == nil || *e.Enabled,
			Keys: []Key{{Key: e.Key, Secret: e.Secret}}, Settings: e.Settings}
		if a.Name == "" {
			a.Name = a.ID
		}
		if err := a.Validate(); err != nil {
			return nil, nil, fmt.Errorf("apps[%d]: %w", i, err)
		}
		if ids[a.ID] {
			return nil, nil, fmt.Errorf("apps[%d]: id %q is listed twice", i, a.ID)
		}
		if keys[e.Key] {
			return nil, nil, fmt.Errorf("apps[%d]: key %q is listed twice", i, e.Key)
		}
		ids[a.ID], keys[e.Key] = true, true
		apps = append(apps, a)
		if e.Policy != nil {
			policies[a.ID] = *e.Policy
		}
	}
	return apps, policies, nil
}

// PutApps stores every app in order and stops at the first error.
func PutApps(ctx context.Context, s Store, apps []*App) error {
	for _, a := range apps {
		if err := s.PutApp(ctx, a); err != nil {
			return fmt.Errorf("app %s: %w", a.ID, err)
		}
	}
	return nil
}
