package main

import (
	"context"

	"github.com/unfurld/unfurld/engine/config"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/postgres"
)

// openStore opens the store the configuration names: the bbolt file,
// with opts (lock timeout, logger), or the PostgreSQL database, whose
// pending migrations it applies, with pg (serve counts its round trips
// for /metrics). Choosing the implementation is cmd's job (STYLE.md 1);
// the engine sees store.Store.
func openStore(ctx context.Context, s config.Storage, opts bolt.Options, pg postgres.Options) (store.Store, error) {
	if s.Driver == config.StoragePostgres {
		st, err := postgres.OpenWith(ctx, s.DSN.Reveal(), pg)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := bolt.Open(s.Path, opts)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// storeName names the store for logs and messages, never with the DSN,
// which may hold a password.
func storeName(s config.Storage) string {
	if s.Driver == config.StoragePostgres {
		return "postgres"
	}
	return s.Path
}
