package live

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unfurld/unfurld/engine/store"
)

// markCommitTimeout bounds one shared commit of pending marks; the
// webhooks waiting for it give up with their own contexts sooner.
const markCommitTimeout = 30 * time.Second

// marker writes webhook pending marks in shared commits: the marks of
// webhooks that arrive while a commit runs go together in the next one,
// and each webhook returns once the commit carrying its marks has. A
// burst of one-link events then costs a commit per burst rather than one
// fsync'd commit each (issue 11), and an answer still means the marks
// are durable (security.md F1).
type marker struct {
	put func(ctx context.Context, subs []store.Subscription) (int, error)

	mu   sync.Mutex
	next *markBatch
	busy bool
}

// markBatch is the marks gathering for the next commit, and its outcome.
type markBatch struct {
	subs []store.Subscription
	done chan struct{}
	err  error
}

// mark adds subs to the next commit and waits for it, or for ctx (the
// marks may then still be written, which only costs a refresh).
func (m *marker) mark(ctx context.Context, subs []store.Subscription) error {
	m.mu.Lock()
	if m.next == nil {
		m.next = &markBatch{done: make(chan struct{})}
	}
	b := m.next
	b.subs = append(b.subs, subs...)
	start := !m.busy
	m.busy = true
	m.mu.Unlock()
	if start {
		go m.commitLoop()
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commitLoop commits batches one after the other until none is
// gathering; at most one runs, so each commit takes everything that
// arrived during the previous one.
func (m *marker) commitLoop() {
	for {
		m.mu.Lock()
		b := m.next
		m.next = nil
		if b == nil {
			m.busy = false
			m.mu.Unlock()
			return
		}
		m.mu.Unlock()
		// No caller's context: the commit serves them all, and each
		// stops waiting with its own.
		ctx, cancel := context.WithTimeout(context.Background(), markCommitTimeout)
		// In key order: a webhook's links arrive in URI order, which
		// scatters them over the subscriptions' pages; sorted, the
		// store's puts move forward through its tree and neighbours
		// share pages. Stable, so that two marks of one key keep their
		// order (the later one wins).
		slices.SortStableFunc(b.subs, func(x, y store.Subscription) int {
			return cmp.Or(strings.Compare(x.Provider, y.Provider), strings.Compare(x.ConnectionID, y.ConnectionID),
				strings.Compare(x.URI, y.URI))
		})
		_, b.err = m.put(ctx, b.subs)
		cancel()
		close(b.done)
	}
}
