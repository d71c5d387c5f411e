package live

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/store"
)

// TestMarksShareCommits_F1: webhooks that mark while a commit runs go
// together in the next commit, and each returns only once the commit
// holding its marks has returned, with its error: a 202 still means the
// marks are durable.
func TestMarksShareCommits_F1(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var commits [][]string
	fail := errors.New("disk full")
	m := &marker{put: func(_ context.Context, subs []store.Subscription) (int, error) {
		mu.Lock()
		n := len(commits)
		var uris []string
		for _, s := range subs {
			uris = append(uris, s.URI)
		}
		commits = append(commits, uris)
		mu.Unlock()
		if n == 0 {
			<-release // the first commit is slow
			return len(subs), nil
		}
		return 0, fail
	}}
	mark := func(uri string) error {
		return m.mark(t.Context(), []store.Subscription{{SubscriptionKey: store.SubscriptionKey{Provider: "p", ConnectionID: "c", URI: uri}}})
	}
	first := make(chan error, 1)
	go func() { first <- mark("u0") }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(commits) == 1 })

	errs := make(chan error, 3)
	for i := 1; i <= 3; i++ {
		go func() { errs <- mark("u" + strconv.Itoa(i)) }()
	}
	waitFor(t, func() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.next != nil && len(m.next.subs) == 3 })
	select {
	case <-first:
		t.Fatal("answered before its commit returned")
	default:
	}
	close(release)
	require.NoError(t, <-first)
	for range 3 {
		require.ErrorIs(t, <-errs, fail, "the shared commit's error reaches each of its webhooks")
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, commits, 2)
	assert.Equal(t, []string{"u0"}, commits[0])
	assert.ElementsMatch(t, []string{"u1", "u2", "u3"}, commits[1])
}

// waitFor polls cond until it holds; the limit is a guard against a hang,
// not a timing assertion.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 10000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition never held")
}
