package store

// RefreshPending is the Outcome of a pending mark: a webhook asked for a
// refresh that has not run yet. The mark is written before the webhook is
// answered, so a refresh acknowledged with 202 survives a crash and is run
// after a restart (issue 4 item 4, security.md F1).
const RefreshPending = "pending"

// IsZero reports whether r is the record of no refresh at all.
func (r RefreshRecord) IsZero() bool {
	return r.At.IsZero() && r.Trigger == "" && r.Outcome == "" && r.Status == 0 && r.Detail == ""
}

// Equal reports whether r and o tell the same story; times compare as
// instants, since stores may hand them back in another location.
func (r RefreshRecord) Equal(o RefreshRecord) bool {
	return r.At.Equal(o.At) && r.Trigger == o.Trigger && r.Outcome == o.Outcome && r.Status == o.Status && r.Detail == o.Detail
}

// MergeSubscription applies the rules of Store.PutSubscription to one put:
// old is the stored record (ok false when there is none), put the record
// given. It returns the record to store and whether to write it. Every
// store calls it, so that they cannot disagree on who owns which field.
//
// A put with a zero Refresh is an unfurl's: it creates a missing record
// as given, and otherwise sets AttrHash (what Notion was answered) and
// keeps the validators and the Refresh of the last live refresh. A put
// with a Refresh is a live refresh's: it never creates a record, because
// the subscription may have been deleted while the refresh ran (TH-40,
// TH-52: nothing brings it back), and sets ETag, LastModified and
// Refresh while keeping AttrHash, which only unfurls and deliveries
// (Outbox.AckOutbox) change. Without that split, an unfurl would erase
// the validators of every link it answers, and a refresh could put back
// the hash a delivery had just replaced. CreatedAt is always the stored
// one; UpdatedAt comes from put when it writes, but for a pending mark.
//
// A pending mark (Refresh.Outcome RefreshPending) is a refresh's put that
// sets only Refresh: the validators still describe the last fetch, and
// UpdatedAt stays, since nothing of the link has changed yet (the mark's
// time is its Refresh.At). A webhook is not an unfurl: ExpireSubscriptions,
// which goes by UpdatedAt for records written before UnfurledAt was kept,
// must not count it as one, and a store then writes the mark and nothing
// else of the link (issue 11: a webhook may name 10,000 links). Once
// marked, a refresh's record replaces the mark only if that refresh began
// (Refresh.At) no earlier than the mark: one that began before may have
// fetched the object before the change the webhook announced, so the
// mark stays for the refresh queued with it, and its validators alone
// are taken.
//
// An unfurl's put also carries the time of the unfurl (UnfurledAt); it is
// written when AttrHash changes, or when it is UnfurledGranularity or more
// after the stored one, so that a link unfurled all day long costs one
// write a day for ExpireSubscriptions to go by. NextPollAt belongs to
// Schedule.SchedulePolls: a put keeps the stored one.
func MergeSubscription(old Subscription, ok bool, put Subscription) (Subscription, bool) {
	refresh := !put.Refresh.IsZero()
	switch {
	case !ok && refresh:
		return Subscription{}, false
	case !ok:
		return put, true
	case refresh && put.Refresh.Outcome == RefreshPending:
		if old.Refresh.Equal(put.Refresh) {
			return old, false
		}
		next := old
		next.Refresh = put.Refresh
		return next, true
	case refresh:
		story := put.Refresh
		if old.Refresh.Outcome == RefreshPending && put.Refresh.At.Before(old.Refresh.At) {
			story = old.Refresh
		}
		if old.ETag == put.ETag && old.LastModified == put.LastModified && old.Refresh.Equal(story) {
			return old, false
		}
		next := old
		next.ETag, next.LastModified, next.Refresh, next.UpdatedAt = put.ETag, put.LastModified, story, put.UpdatedAt
		return next, true
	default:
		moved := !put.UnfurledAt.Before(old.UnfurledAt.Add(UnfurledGranularity))
		if old.AttrHash == put.AttrHash && !moved {
			return old, false
		}
		next := old
		next.AttrHash, next.UpdatedAt = put.AttrHash, put.UpdatedAt
		if put.UnfurledAt.After(old.UnfurledAt) {
			// Written anyway: the finer time costs nothing more.
			next.UnfurledAt = put.UnfurledAt
		}
		return next, true
	}
}
