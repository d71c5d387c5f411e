package postgres

import (
	"database/sql/driver"
	"fmt"
	"math"
	"time"
)

// Column types (migrations/0001_init.sql). Strings travel as bytea and
// times as int8 nanoseconds; these wrappers convert at the call sites so
// that every query reads like the record it writes:
//
//	tx.Exec(ctx, `... VALUES ($1, $2)`, b(t.Digest), ns(t.CreatedAt))
//	row.Scan(sb(&t.Digest), sns(&t.CreatedAt))

// bstr is a string stored as bytea.
type bstr string

// b wraps s for a query argument.
func b(s string) bstr { return bstr(s) }

// Value implements driver.Valuer: always bytes, never text, so a string
// that starts with a backslash is not read as bytea escapes.
func (s bstr) Value() (driver.Value, error) { return []byte(s), nil }

// scanStr scans bytea into a string; NULL reads as "".
type scanStr struct{ dst *string }

// sb wraps dst for Scan.
func sb(dst *string) scanStr { return scanStr{dst} }

// Scan implements sql.Scanner.
func (s scanStr) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.dst = ""
	case []byte:
		*s.dst = string(v)
	case string:
		*s.dst = v
	default:
		return fmt.Errorf("scan %T into a string", src)
	}
	return nil
}

// Nanoseconds since the epoch hold the years 1678 to 2262; a time
// outside is refused rather than silently wrapped.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nsTime is a time stored as int8 nanoseconds, NULL for the zero time.
type nsTime time.Time

// ns wraps t for a query argument.
func ns(t time.Time) nsTime { return nsTime(t) }

// Value implements driver.Valuer.
func (t nsTime) Value() (driver.Value, error) {
	tt := time.Time(t)
	if tt.IsZero() {
		return nil, nil
	}
	if tt.Before(minTime) || tt.After(maxTime) {
		return nil, fmt.Errorf("time %s is outside the years 1678-2262 the store holds", tt.UTC().Format(time.RFC3339))
	}
	return tt.UnixNano(), nil
}

// scanTime scans int8 nanoseconds into a UTC time; NULL reads as zero.
type scanTime struct{ dst *time.Time }

// sns wraps dst for Scan.
func sns(dst *time.Time) scanTime { return scanTime{dst} }

// Scan implements sql.Scanner.
func (s scanTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.dst = time.Time{}
	case int64:
		*s.dst = time.Unix(0, v).UTC()
	default:
		return fmt.Errorf("scan %T into a time", src)
	}
	return nil
}

// neverPolled is next_poll_at of a subscription never scheduled
// (migrations/0003_schedule.sql): below every time, so due at once.
const neverPolled = math.MinInt64

// nextPollTime is a next poll time in next_poll_at: never NULL, the zero
// time as neverPolled.
type nextPollTime time.Time

// nextPoll wraps t for a query argument.
func nextPoll(t time.Time) nextPollTime { return nextPollTime(t) }

// Value implements driver.Valuer.
func (t nextPollTime) Value() (driver.Value, error) {
	if time.Time(t).IsZero() {
		return int64(neverPolled), nil
	}
	return nsTime(t).Value()
}

// scanNextPoll scans next_poll_at; neverPolled reads as the zero time.
type scanNextPoll struct{ dst *time.Time }

// snext wraps dst for Scan.
func snext(dst *time.Time) scanNextPoll { return scanNextPoll{dst} }

// Scan implements sql.Scanner.
func (s scanNextPoll) Scan(src any) error {
	if v, ok := src.(int64); ok && v == neverPolled {
		*s.dst = time.Time{}
		return nil
	}
	return scanTime(s).Scan(src)
}

// nullBytes stores an empty slice as NULL; both read back as nil, which
// callers treat alike.
func nullBytes(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	return p
}
