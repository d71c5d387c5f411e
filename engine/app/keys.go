package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/unfurld/unfurld/engine/sealing"
)

// CheckSealingKeys runs before serving. It refuses a keyring that lacks a
// key stored records still need (security.md TH-42): dropping a key from
// server.secret_keys would otherwise silently turn those users'
// connections into "reconnect required". drop names keys the operator
// has given up on (lost for good): their records are dropped first, see
// sealing.DropRemovedKeys, and logged.
func (a *App) CheckSealingKeys(ctx context.Context, drop []string) error {
	if len(drop) > 0 {
		done, err := sealing.DropRemovedKeys(ctx, a.Store, a.Keyring, drop, a.now())
		if err != nil {
			return fmt.Errorf("server.secret_keys: %w", err)
		}
		a.log.WarnContext(ctx, "dropped the records of removed sealing keys; their users must reconnect",
			"keys", strings.Join(drop, ","), "connections", done.Connections, "flows", done.Flows, "successors", done.Successors)
	}
	err := sealing.CheckRemovedKeys(ctx, a.Store, a.Keyring, a.now())
	// One line per removed key, each naming the setting.
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var errs []error
		for _, e := range j.Unwrap() {
			errs = append(errs, fmt.Errorf("server.secret_keys: %w", e))
		}
		return errors.Join(errs...)
	}
	if err != nil {
		return fmt.Errorf("server.secret_keys: %w", err)
	}
	return nil
}
