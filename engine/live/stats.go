package live

import "time"

// Results of a delivery attempt, as ProviderStats.LastResult.
const (
	// ResultDelivered: Notion accepted the PATCH.
	ResultDelivered = "delivered"
	// ResultRetry: the PATCH failed and is scheduled again.
	ResultRetry = "retry"
	// ResultFailed: the state was dropped (given up, refused, or its
	// connection stopped).
	ResultFailed = "failed"
)

// ProviderStats describes a provider's recent pushes, for the status
// endpoint (issue 4 item 5). It is kept in memory since the start of the
// process; the queue itself (depth, per-item attempts and last error) is
// in the store.
type ProviderStats struct {
	// LastPushAt is the time of the last attempt, LastResult its outcome
	// and LastError its error ("" after a delivery).
	LastPushAt time.Time
	LastResult string
	LastError  string
	// LastDeliveredAt is the time of the last accepted PATCH.
	LastDeliveredAt time.Time
	// Delivered, Retries and Failures count outcomes; a failure is a
	// state dropped for good.
	Delivered, Retries, Failures int
	// LastFailureAt and LastFailure describe the last failure.
	LastFailureAt time.Time
	LastFailure   string
}

// Stats returns a copy of the delivery statistics per provider; providers
// without any attempt are absent.
func (d *Deliverer) Stats() map[string]ProviderStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]ProviderStats, len(d.stats))
	for p, s := range d.stats {
		out[p] = *s
	}
	return out
}

// record notes an outcome for provider.
func (d *Deliverer) record(provider string, at time.Time, result string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if d.onPush != nil {
		d.onPush(provider, result)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats[provider]
	if s == nil {
		s = &ProviderStats{}
		d.stats[provider] = s
	}
	s.LastPushAt, s.LastResult, s.LastError = at, result, msg
	switch result {
	case ResultDelivered:
		s.Delivered++
		s.LastDeliveredAt = at
	case ResultRetry:
		s.Retries++
	case ResultFailed:
		s.Failures++
		s.LastFailureAt, s.LastFailure = at, msg
	}
}
