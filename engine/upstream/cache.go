package upstream

import (
	"container/list"
	"sync"
	"time"
)

// cache is a bounded TTL map of 2xx results. Entries are kept in insertion
// order; with one TTL for all, that is also expiry order, so expired
// entries and, when full, the oldest are dropped from the front.
type cache struct {
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[string]*list.Element // value: *cacheEntry
	order   *list.List               // oldest first
}

type cacheEntry struct {
	key     string
	res     *result
	expires time.Time
}

func newCache(ttl time.Duration, maxEntries int) *cache {
	return &cache{ttl: ttl, max: maxEntries, entries: map[string]*list.Element{}, order: list.New()}
}

// get returns a live entry; an expired one is removed.
func (c *cache) get(key string, now time.Time) (*result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	e, _ := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.remove(el)
		return nil, false
	}
	return e.res, true
}

// put stores res until now+ttl, replacing any entry under key.
func (c *cache) put(key string, res *result, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		c.remove(el)
	}
	for c.order.Len() > 0 {
		front := c.order.Front()
		e, _ := front.Value.(*cacheEntry)
		if c.order.Len() < c.max && now.Before(e.expires) {
			break
		}
		c.remove(front)
	}
	c.entries[key] = c.order.PushBack(&cacheEntry{key: key, res: res, expires: now.Add(c.ttl)})
}

func (c *cache) remove(el *list.Element) {
	e, _ := el.Value.(*cacheEntry)
	delete(c.entries, e.key)
	c.order.Remove(el)
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *cache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = map[string]*list.Element{}
	c.order.Init()
}
