package bolt

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// subRecordSamples cover every field present and absent, strings that
// need each of encoding/json's escapes, a refresh whose only field is a
// zero time in another zone (the object is written, empty) and years
// time.Time cannot marshal.
func subRecordSamples() []subRecord {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	zone := time.FixedZone("x", -7*3600)
	return []subRecord{
		{},
		{V: 1, CreatedAt: at, UpdatedAt: at},
		{V: 1, AttrHash: "0123abcd", ETag: `W/"33a64df5"`, LastModified: "Fri, 14 Mar 2025 15:09:26 GMT", CreatedAt: at, UpdatedAt: at.In(zone),
			Refresh:     refreshRecord{At: at, Trigger: "webhook", Outcome: "changed", Status: 200, Detail: "<b>&</b> \u2028 \x01 \xff é \\ \" \n"},
			DeliveredAt: at.Add(time.Second), UnfurledAt: at.Add(time.Hour)},
		{V: 1, Refresh: refreshRecord{At: time.Time{}.In(zone)}},
		{V: 1, Refresh: refreshRecord{Status: -3}},
		{V: 1, Refresh: refreshRecord{Detail: "only"}},
		{V: 1, CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{V: 1, UnfurledAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
}

// checkEncodeSub holds encodeSub to encode, which is encoding/json.
func checkEncodeSub(t *testing.T, r subRecord) {
	t.Helper()
	want, wantErr := encode("subscription", r)
	got, err := encodeSub(r)
	if wantErr != nil {
		require.Error(t, err, "%+v", r)
		return
	}
	require.NoError(t, err, "%+v", r)
	assert.Equal(t, string(want), string(got))
}

// TestEncodeSubIsEncodingJSON: the hand-written encoder writes exactly
// what encoding/json writes, and fails where it fails.
func TestEncodeSubIsEncodingJSON(t *testing.T) {
	for _, r := range subRecordSamples() {
		checkEncodeSub(t, r)
	}
}

// TestEncodeSubKnowsEveryField fails when a field is added to the
// subscription record or its refresh, so that encodeSub, which names
// each field, is taught it before a record loses it.
func TestEncodeSubKnowsEveryField(t *testing.T) {
	assert.Equal(t, 9, reflect.TypeFor[subRecord]().NumField(), "add the new field to encodeSub and to subRecordSamples")
	assert.Equal(t, 5, reflect.TypeFor[refreshRecord]().NumField(), "add the new field to encodeSub and to subRecordSamples")
}

// FuzzEncodeSub holds encodeSub to encoding/json on any strings, times
// and status.
func FuzzEncodeSub(f *testing.F) {
	f.Add("h", "e", "m", "t", "o", "d", int64(1_700_000_000_000_000_000), int64(0), 200, true)
	f.Add("<&>", "\u2028", "\xff", "", "\x00", `"\`, int64(-9_000_000_000_000_000_000), int64(253_402_300_800), -1, false)
	f.Fuzz(func(t *testing.T, hash, etag, lastMod, trigger, outcome, detail string, ns, sec int64, status int, utc bool) {
		loc := time.UTC
		if !utc {
			loc = time.FixedZone("z", int(sec%86_400))
		}
		a, b := time.Unix(0, ns).In(loc), time.Unix(sec, ns%1_000_000_000).In(loc)
		checkEncodeSub(t, subRecord{
			V: int(sec % 3), AttrHash: hash, ETag: etag, LastModified: lastMod, CreatedAt: a, UpdatedAt: b,
			Refresh:     refreshRecord{At: b, Trigger: trigger, Outcome: outcome, Status: status, Detail: detail},
			DeliveredAt: a, UnfurledAt: b,
		})
		checkEncodeSub(t, subRecord{V: 1, AttrHash: hash, Refresh: refreshRecord{Outcome: outcome, Status: status}, UnfurledAt: a})
	})
}

// BenchmarkEncodeSub compares the hand-written encoder with encoding/json
// on the record of a cold unfurl's new subscription.
func BenchmarkEncodeSub(b *testing.B) {
	at := time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)
	r := subRecord{V: 1, AttrHash: "0123456789abcdef0123456789abcdef", CreatedAt: at, UpdatedAt: at, UnfurledAt: at}
	for name, enc := range map[string]func(subRecord) ([]byte, error){
		"encoding_json": func(r subRecord) ([]byte, error) { return encode("subscription", r) },
		"hand_written":  encodeSub,
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
