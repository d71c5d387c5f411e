package bolt

import "sync"

// owners is the set of lease owners that claimed work through this open
// store. bbolt's file lock gives the file to one process at a time, so a
// lease in the file whose owner is not in the set was taken by a process
// that has exited (a crash, a kill -9, a restart): nobody can be working
// on it, and a claim takes it over at once instead of waiting for the
// lease to run out (10 s for a webhook refresh; a restarted server used
// to wait for its own dead leases). With PostgreSQL several replicas
// share the work, and a lease ends only when it runs out.
type owners struct {
	mu    sync.Mutex
	names map[string]bool
}

// add records that owner claims through this store.
func (o *owners) add(owner string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.names == nil {
		o.names = map[string]bool{}
	}
	o.names[owner] = true
}

// alive reports whether owner claimed through this store: its leases are
// of a running process.
func (o *owners) alive(owner string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.names[owner]
}

// holds reports whether the lease value v is held at now (a key): it
// runs until after now and its owner is alive.
func (o *owners) holds(v []byte, now uint64) bool {
	by, until := leaseOf(v)
	return until > now && o.alive(by)
}
