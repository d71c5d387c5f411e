package cached_test

import (
	"path/filepath"
	"testing"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/bolt"
	"github.com/unfurld/unfurld/engine/store/cached"
	"github.com/unfurld/unfurld/engine/store/memory"
	"github.com/unfurld/unfurld/engine/store/storetest"
)

// The cached store is a store.Store like the others, over any of them:
// its caching and invalidation must not change what the contract says.

func overMemory(*testing.T) *cached.Store { return cached.New(memory.New(), cached.Options{}) }

func overBolt(t *testing.T) *cached.Store {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "unfurld.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cached.New(st, cached.Options{}) // the suite closes it, and so the file
}

func TestConformanceOverMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return overMemory(t) })
	storetest.RunOutbox(t, func(t *testing.T) storetest.OutboxStore { return overMemory(t) })
	storetest.RunSchedule(t, func(t *testing.T) storetest.ScheduleStore { return overMemory(t) })
}

func TestConformanceOverBolt(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return overBolt(t) })
	storetest.RunOutbox(t, func(t *testing.T) storetest.OutboxStore { return overBolt(t) })
	storetest.RunSchedule(t, func(t *testing.T) storetest.ScheduleStore { return overBolt(t) })
}
