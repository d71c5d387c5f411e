package connect

import (
	"context"
	"errors"
	"time"

	"github.com/unfurld/unfurld/engine/provider"
	"github.com/unfurld/unfurld/engine/store"
)

// failureQuiet is how long the same failure (same call, link and status)
// is not written again: Notion retries and users paste the same broken
// link, and each write is a commit.
const failureQuiet = time.Minute

// maxDetail bounds a failure's detail in the record.
const maxDetail = 300

// UnfurlFailure describes a failed unfurl r of uri for the connection's
// record: the error operation's status and the upstream failure (which
// names the host, never a credential, query or body), else the message
// Notion was shown.
func UnfurlFailure(at time.Time, uri string, r *provider.Result) store.ConnectionEvent {
	ev := store.ConnectionEvent{At: at.UTC(), Call: "unfurl", URI: uri}
	if r.Error != nil {
		ev.Status, ev.Detail = r.Error.Status, r.Error.Message
	}
	if f := r.Failure; f != nil {
		ev.Detail = f.Kind
		if f.Request != "" {
			ev.Detail += " in request " + f.Request
		}
		if f.Err != nil {
			ev.Detail += ": " + f.Err.Error()
		}
	}
	if len(ev.Detail) > maxDetail {
		ev.Detail = ev.Detail[:maxDetail] + "..."
	}
	return ev
}

// NoteFailure adds ev to the connection's last failures. conn is the
// caller's copy, read before the failure: when its newest failure is the
// same one less than failureQuiet ago, nothing is written. Only failures
// call it, so a healthy connection never pays for the record.
func NoteFailure(ctx context.Context, st store.Store, conn store.Connection, ev store.ConnectionEvent) error {
	if n := len(conn.Failures); n > 0 {
		last := conn.Failures[n-1]
		if last.Call == ev.Call && last.URI == ev.URI && last.Status == ev.Status && ev.At.Sub(last.At) < failureQuiet && !ev.At.Before(last.At) {
			return nil
		}
	}
	err := st.UpdateConnection(ctx, conn.ID, func(c store.Connection) (store.Connection, error) {
		return c.WithFailure(ev), nil
	})
	if errors.Is(err, store.ErrNotFound) {
		// Deleted meanwhile: nothing to explain any more.
		return nil
	}
	return err
}
