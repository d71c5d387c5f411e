package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// BudgetStore is a store that keeps the polling budgets shared by every
// process on it.
type BudgetStore interface {
	store.Store
	store.SharedPollBudget
}

// RunSharedPollBudget runs the conformance suite of
// store.SharedPollBudget (issue 11): a provider's polling token bucket
// kept in the store, which every replica reserves from. Like Run,
// newStore returns a new, empty store for each subtest, which
// RunSharedPollBudget closes when it ends.
func RunSharedPollBudget(t *testing.T, newStore func(t *testing.T) BudgetStore) {
	t.Helper()
	runCases(t, newStore, sequential, []suiteCase[BudgetStore]{
		{"StartsFullAndRefills", testBudgetStartsFullAndRefills},
		{"SettlesDebt", testBudgetSettlesDebt},
		{"PerProvider", testBudgetPerProvider},
		{"ConcurrentReservations", testBudgetConcurrent},
	})
}

// budgetT0 is the first reservation's time.
var budgetT0 = time.Date(2026, time.December, 7, 12, 0, 0, 0, time.UTC)

// reserveBudget asks for want tokens of provider p's bucket of one token
// a second, ten at most, settling debt.
func reserveBudget(t *testing.T, s BudgetStore, p string, at time.Duration, want int, debt float64) (int, float64) {
	t.Helper()
	granted, left, err := s.ReservePollBudget(t.Context(), store.BudgetReservation{
		Provider: p, Now: budgetT0.Add(at), PerSecond: 1, Burst: 10, Want: want, Debt: debt,
	})
	require.NoError(t, err)
	return granted, left
}

// testBudgetStartsFullAndRefills: a new bucket holds its burst; taking
// past it grants what is left; it refills at its rate, never past the
// burst, and a reservation earlier than the last (another replica's
// clock) refills nothing.
func testBudgetStartsFullAndRefills(t *testing.T, s BudgetStore) {
	granted, left := reserveBudget(t, s, "tracker", 0, 4, 0)
	assert.Equal(t, 4, granted)
	assert.InDelta(t, 6, left, 1e-9)
	granted, left = reserveBudget(t, s, "tracker", 0, 64, 0)
	assert.Equal(t, 6, granted, "the rest of the burst")
	assert.InDelta(t, 0, left, 1e-9)
	granted, _ = reserveBudget(t, s, "tracker", 0, 1, 0)
	assert.Zero(t, granted, "spent")
	granted, left = reserveBudget(t, s, "tracker", 2500*time.Millisecond, 64, 0)
	assert.Equal(t, 2, granted, "2.5s refilled 2.5 tokens")
	assert.InDelta(t, 0.5, left, 1e-9)
	granted, left = reserveBudget(t, s, "tracker", time.Second, 64, 0)
	assert.Zero(t, granted, "an earlier clock refills nothing")
	assert.InDelta(t, 0.5, left, 1e-9)
	granted, left = reserveBudget(t, s, "tracker", time.Hour, 3, 0)
	assert.Equal(t, 3, granted)
	assert.InDelta(t, 7, left, 1e-9, "refilled to the burst, not beyond")
}

// testBudgetSettlesDebt: requests sent beyond the tokens taken are paid
// from the next reservation, which may leave the bucket below zero;
// unused tokens given back return, up to the burst.
func testBudgetSettlesDebt(t *testing.T, s BudgetStore) {
	granted, _ := reserveBudget(t, s, "tracker", 0, 8, 0)
	require.Equal(t, 8, granted)
	granted, left := reserveBudget(t, s, "tracker", 0, 4, 5)
	assert.Zero(t, granted, "2 left, 5 owed")
	assert.InDelta(t, -3, left, 1e-9)
	granted, left = reserveBudget(t, s, "tracker", 4*time.Second, 4, 0)
	assert.Equal(t, 1, granted, "4s paid the debt and one more")
	assert.InDelta(t, 0, left, 1e-9)
	granted, left = reserveBudget(t, s, "tracker", 4*time.Second, 0, -20)
	assert.Zero(t, granted)
	assert.InDelta(t, 10, left, 1e-9, "a refund fills up to the burst")
}

// testBudgetPerProvider: each provider has its own bucket.
func testBudgetPerProvider(t *testing.T, s BudgetStore) {
	granted, _ := reserveBudget(t, s, "tracker", 0, 10, 0)
	require.Equal(t, 10, granted)
	granted, _ = reserveBudget(t, s, "other", 0, 10, 0)
	assert.Equal(t, 10, granted, "another provider's bucket is full")
}

// testBudgetConcurrent: reservations at once, as from several replicas,
// never grant more than the bucket holds in total, and grant all of it.
func testBudgetConcurrent(t *testing.T, s BudgetStore) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 8 {
		wg.Go(func() {
			for range 4 {
				granted, _, err := s.ReservePollBudget(t.Context(), store.BudgetReservation{
					Provider: "tracker", Now: budgetT0, PerSecond: 1, Burst: 10, Want: 1,
				})
				assert.NoError(t, err)
				mu.Lock()
				total += granted
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 10, total, "exactly the burst, over 32 asks of one")
}
