package memory

import (
	"context"
	"slices"
	"strings"

	"github.com/unfurld/unfurld/engine/store"
)

var _ store.SealedStore = (*Store)(nil)

// ListFlows implements store.SealedStore, in ID order.
func (s *Store) ListFlows(ctx context.Context) ([]store.Flow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Flow
	for _, f := range s.flows {
		out = append(out, copyFlow(f))
	}
	slices.SortFunc(out, func(a, b store.Flow) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ListSuccessors implements store.SealedStore, in digest order.
func (s *Store) ListSuccessors(ctx context.Context) ([]store.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Token
	for _, t := range s.toks {
		if len(t.Successor) > 0 {
			out = append(out, copyToken(t))
		}
	}
	slices.SortFunc(out, func(a, b store.Token) int { return strings.Compare(a.Digest, b.Digest) })
	return out, nil
}

// UpdateSuccessor implements store.SealedStore; fn runs under the lock.
func (s *Store) UpdateSuccessor(ctx context.Context, digest string, fn func(store.Token) ([]byte, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.toks[digest]
	if !ok {
		return store.ErrNotFound
	}
	next, err := fn(copyToken(t))
	if err != nil {
		return err
	}
	t.Successor = slices.Clone(next)
	s.toks[digest] = t
	return nil
}
