package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
	"github.com/unfurld/unfurld/engine/store/storetest"
)

// TestObservedConformance: the timing wrapper is still a whole store.
func TestObservedConformance(t *testing.T) {
	nop := func(string, time.Duration, error) {}
	storetest.Run(t, func(*testing.T) store.Store { return store.Observe(memory.New(), nop) })
	storetest.RunOutbox(t, func(*testing.T) storetest.OutboxStore { return store.Observe(memory.New(), nop) })
	storetest.RunSchedule(t, func(*testing.T) storetest.ScheduleStore { return store.Observe(memory.New(), nop) })
}

// TestObservedReports: every call reaches the observer with its name and
// its error.
func TestObservedReports(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]error{}
	st := store.Observe(memory.New(), func(op string, _ time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		seen[op] = err
	})
	ctx := t.Context()
	_, err := st.GetConnection(ctx, "missing")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.NoError(t, st.CreateConnection(ctx, store.Connection{ID: "c1", Provider: "p", AccountKey: "k", Status: store.StatusActive}))
	_, err = st.OutboxDepth(ctx)
	require.NoError(t, err)
	_, err = st.ClaimDuePolls(ctx, "p", "r1", time.Now(), time.Minute, 1)
	require.NoError(t, err)

	assert.True(t, errors.Is(seen["GetConnection"], store.ErrNotFound))
	assert.Contains(t, seen, "CreateConnection")
	assert.NoError(t, seen["CreateConnection"])
	assert.Contains(t, seen, "OutboxDepth")
	assert.Contains(t, seen, "ClaimDuePolls")
}
