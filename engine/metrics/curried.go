package metrics

import (
	"sync"
	"sync/atomic"
)

// curried caches one resolved child of a metric vector per label key.
// Reads load an immutable map through an atomic pointer: no lock, no
// allocation. The first use of a key copies the map under mu; keys are
// bounded by the configuration, so copies stop after warm-up.
type curried[K comparable, V any] struct {
	m     atomic.Pointer[map[K]V]
	mu    sync.Mutex
	build func(K) V
}

func newCurried[K comparable, V any](build func(K) V) *curried[K, V] {
	return &curried[K, V]{build: build}
}

// get returns the child for k, resolving it on first use.
func (c *curried[K, V]) get(k K) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	next := make(map[K]V, 1)
	if old != nil {
		next = make(map[K]V, len(*old)+1)
		for k2, v2 := range *old {
			next[k2] = v2
		}
	}
	v := c.build(k)
	next[k] = v
	c.m.Store(&next)
	return v
}
