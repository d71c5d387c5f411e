package sealing

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/unfurld/unfurld/engine/clock/clocktest"
	"github.com/unfurld/unfurld/engine/store"
	"github.com/unfurld/unfurld/engine/store/memory"
)

// rotationNow is the clock of the rotation tests; flows expire an hour
// after it.
var rotationNow = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// ring builds a keyring from seeds keyed by id, primary first.
func ring(t *testing.T, primary string, ids ...string) *Keyring {
	t.Helper()
	seeds := map[string]byte{"k0": 10, "k1": 1, "k2": 2}
	others := map[string][]byte{}
	for _, id := range ids {
		others[id] = testKey(seeds[id])
	}
	k, err := NewKeyring(primary, testKey(seeds[primary]), others)
	require.NoError(t, err)
	return k
}

// sealedWorld is what a store holds after running with one key: each
// record's plaintexts, to check they survive the rotation unchanged.
type sealedWorld struct {
	conns      map[string][2][]byte // id -> notion token, upstream credential
	flows      map[string][]byte
	successors map[string][]byte
}

// fill stores n connections, a pending flow and a refresh successor, all
// sealed with k, through the store API and the real sealing functions.
func fill(t *testing.T, st store.Store, k *Keyring, prefix string, n int) *sealedWorld {
	t.Helper()
	ctx := t.Context()
	w := &sealedWorld{conns: map[string][2][]byte{}, flows: map[string][]byte{}, successors: map[string][]byte{}}
	for i := range n {
		id := prefix + "c" + string(rune('a'+i))
		c := store.Connection{
			ID: id, Provider: "github", AccountKey: "acct-" + id, WorkspaceID: "ws-" + id,
			Status: store.StatusActive, CreatedAt: rotationNow, UpdatedAt: rotationNow,
		}
		nt, uc := []byte("notion-"+id), []byte("upstream-"+id)
		var err error
		c.NotionToken, err = SealConnectionField(k, c, FieldNotionToken, nt)
		require.NoError(t, err)
		c.UpstreamCredential, err = SealConnectionField(k, c, FieldUpstreamCredential, uc)
		require.NoError(t, err)
		require.NoError(t, st.CreateConnection(ctx, c))
		w.conns[id] = [2][]byte{nt, uc}
	}
	fid := prefix + "flow"
	data, err := SealFlow(k, fid, []byte("flow-state-"+fid))
	require.NoError(t, err)
	require.NoError(t, st.CreateFlow(ctx, store.Flow{ID: fid, Provider: "github", Data: data, CreatedAt: rotationNow, ExpiresAt: rotationNow.Add(time.Hour)}, 100))
	w.flows[fid] = []byte("flow-state-" + fid)

	rt := store.Token{Digest: prefix + "rt", Kind: store.KindRefresh, Provider: "github", ConnectionID: prefix + "ca", GrantID: prefix + "g", CreatedAt: rotationNow}
	require.NoError(t, st.CreateToken(ctx, rt))
	pair := []byte(`{"access_token":"ufd_at_x","token_type":"bearer"}`)
	_, _, err = st.ConsumeToken(ctx, store.Consume{
		Kind: store.KindRefresh, Digest: rt.Digest, Provider: "github", Now: rotationNow, Grace: time.Minute,
		Issue: func(store.Token) ([]store.Token, []byte, error) {
			s, err := k.Seal(pair, SuccessorAAD(rt.Digest))
			return nil, s, err
		},
	})
	require.NoError(t, err)
	w.successors[rt.Digest] = pair
	return w
}

// opens checks that every record of w opens with k, under its own aad,
// to its original plaintext, and that key is the id it is sealed with.
func (w *sealedWorld) opens(t *testing.T, st store.Store, k *Keyring, key string) {
	t.Helper()
	ctx := t.Context()
	for id, want := range w.conns {
		c, err := st.GetConnection(ctx, id)
		require.NoError(t, err)
		for i, f := range []struct {
			name  string
			value []byte
		}{{FieldNotionToken, c.NotionToken}, {FieldUpstreamCredential, c.UpstreamCredential}} {
			got, err := OpenConnectionField(k, c, f.name, f.value)
			require.NoError(t, err, "%s %s", id, f.name)
			assert.Equal(t, want[i], got)
			kid, _ := SealedKeyID(f.value)
			assert.Equal(t, key, kid, "%s %s", id, f.name)
		}
		assert.Equal(t, rotationNow, c.UpdatedAt.UTC(), "a re-seal is not an update the user made")
	}
	for id, want := range w.flows {
		f, err := st.GetFlow(ctx, id, rotationNow)
		require.NoError(t, err)
		got, err := OpenFlow(k, f)
		require.NoError(t, err)
		assert.Equal(t, want, got)
		kid, _ := SealedKeyID(f.Data)
		assert.Equal(t, key, kid)
	}
	toks, err := st.ListSuccessors(ctx)
	require.NoError(t, err)
	for _, tok := range toks {
		want, ok := w.successors[tok.Digest]
		if !ok {
			continue
		}
		got, err := k.Open(tok.Successor, SuccessorAAD(tok.Digest))
		require.NoError(t, err)
		assert.Equal(t, want, got)
		kid, _ := SealedKeyID(tok.Successor)
		assert.Equal(t, key, kid)
	}
}

func usageOf(t *testing.T, st store.Store, k *Keyring) map[string]KeyUsage {
	t.Helper()
	list, err := CountSealed(t.Context(), st, k, rotationNow)
	require.NoError(t, err)
	out := map[string]KeyUsage{}
	for _, u := range list {
		out[u.ID] = u
	}
	return out
}

func newTestResealer(st store.Store, k *Keyring) *Resealer {
	return NewResealer(ResealerOptions{Store: st, Keyring: k, Now: func() time.Time { return rotationNow }})
}

// TestResealMovesEveryRecord_F14_TH42 runs with K1, restarts with K2
// primary and K1 old, and drives the re-seal step by step: old records
// open throughout, new ones are sealed with K2, the counts move to K2,
// and a keyring of K2 alone is refused before and accepted after.
func TestResealMovesEveryRecord_F14_TH42(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := memory.New()
	w := fill(t, st, ring(t, "k1"), "", 3)

	both := ring(t, "k2", "k1")
	w.opens(t, st, both, "k1")
	u := usageOf(t, st, both)
	assert.Equal(t, KeyUsage{ID: "k1", InKeyring: true, Connections: 3, Flows: 1, Successors: 1}, u["k1"])
	assert.Equal(t, KeyUsage{ID: "k2", Primary: true, InKeyring: true}, u["k2"])

	// Dropping K1 now is refused, naming the count.
	err := CheckRemovedKeys(ctx, st, ring(t, "k2"), rotationNow)
	var rk *RemovedKeyError
	require.ErrorAs(t, err, &rk)
	assert.Equal(t, 5, rk.Usage.Needed())
	assert.Contains(t, err.Error(), `key "k1" was removed but still seals 5 stored records (3 connections, 1 pending flow, 1 refresh successor)`)

	// A record written after the restart is sealed with K2.
	fresh := fill(t, st, both, "new-", 1)
	fresh.opens(t, st, both, "k2")

	r := newTestResealer(st, both)
	done, err := r.Step(ctx, 2)
	require.NoError(t, err)
	require.False(t, done)
	u = usageOf(t, st, both)
	assert.Equal(t, 3, u["k1"].Needed(), "one step moves at most its batch")
	assert.Equal(t, 2+3, u["k2"].Needed())

	for range 10 {
		if done, err = r.Step(ctx, 2); err != nil || done {
			break
		}
	}
	require.NoError(t, err)
	require.True(t, done, "the re-seal ends")
	u = usageOf(t, st, both)
	assert.Equal(t, KeyUsage{ID: "k1", InKeyring: true}, u["k1"])
	assert.Equal(t, 8, u["k2"].Needed())

	k2only := ring(t, "k2")
	w.opens(t, st, k2only, "k2")
	fresh.opens(t, st, k2only, "k2")
	require.NoError(t, CheckRemovedKeys(ctx, st, k2only, rotationNow))
}

// TestResealSkipsMissingAndBrokenKeys_TH42: a record whose key is gone
// is never touched and still answers "key unavailable" (reconnect
// required); a record that does not open with its key is left alone
// too, and neither keeps the job from ending.
func TestResealSkipsMissingAndBrokenKeys_TH42(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := memory.New()
	fill(t, st, ring(t, "k0"), "gone-", 1)
	fill(t, st, ring(t, "k1"), "bad-", 1)
	require.NoError(t, st.UpdateConnection(ctx, "bad-ca", func(c store.Connection) (store.Connection, error) {
		c.UpstreamCredential[len(c.UpstreamCredential)-1] ^= 1 // tampered
		return c, nil
	}))
	before, err := st.GetConnection(ctx, "gone-ca")
	require.NoError(t, err)

	k := ring(t, "k2", "k1")
	var logs bytes.Buffer
	r := NewResealer(ResealerOptions{Store: st, Keyring: k, Now: func() time.Time { return rotationNow }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	done := false
	for i := 0; i < 10 && !done; i++ {
		done, err = r.Step(ctx, 100)
		require.NoError(t, err)
	}
	require.True(t, done)

	after, err := st.GetConnection(ctx, "gone-ca")
	require.NoError(t, err)
	assert.Equal(t, before, after, "a record under a missing key is not touched")
	_, err = OpenConnectionField(k, after, FieldUpstreamCredential, after.UpstreamCredential)
	require.ErrorIs(t, err, ErrKeyUnavailable)

	bad, err := st.GetConnection(ctx, "bad-ca")
	require.NoError(t, err)
	id, _ := SealedKeyID(bad.UpstreamCredential)
	assert.Equal(t, "k1", id, "the broken field stays as it was")
	_, err = OpenConnectionField(k, bad, FieldNotionToken, bad.NotionToken)
	require.NoError(t, err, "the sound field of the same record moved")
	id, _ = SealedKeyID(bad.NotionToken)
	assert.Equal(t, "k2", id)
	assert.Contains(t, logs.String(), "does not open with its key")
	assert.Contains(t, logs.String(), "connection=bad-ca")

	u := usageOf(t, st, k)
	assert.Equal(t, 3, u["k0"].Needed(), "the missing key is listed with its records")
	assert.False(t, u["k0"].InKeyring)
}

// racingStore lets a concurrent writer commit between the re-seal's scan
// and its read-modify-write of a connection.
type racingStore struct {
	store.Store
	once   sync.Once
	writer func()
}

func (s *racingStore) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	s.once.Do(s.writer)
	return s.Store.UpdateConnection(ctx, id, fn)
}

// TestResealKeepsConcurrentWrite_TH42: a writer that replaced the
// credential and renamed the account after the scan keeps both; the
// re-seal works on the record it reads in its own transaction.
func TestResealKeepsConcurrentWrite_TH42(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := memory.New()
	fill(t, mem, ring(t, "k1"), "", 1)
	k := ring(t, "k2", "k1")
	st := &racingStore{Store: mem}
	st.writer = func() {
		require.NoError(t, mem.UpdateConnection(ctx, "ca", func(c store.Connection) (store.Connection, error) {
			var err error
			c.AccountName = "renamed"
			c.UpstreamCredential, err = SealConnectionField(k, c, FieldUpstreamCredential, []byte("refreshed"))
			return c, err
		}))
	}
	r := newTestResealer(st, k)
	done := false
	var err error
	for i := 0; i < 5 && !done; i++ {
		done, err = r.Step(ctx, 10)
		require.NoError(t, err)
	}
	require.True(t, done)
	c, err := mem.GetConnection(ctx, "ca")
	require.NoError(t, err)
	assert.Equal(t, "renamed", c.AccountName)
	got, err := OpenConnectionField(ring(t, "k2"), c, FieldUpstreamCredential, c.UpstreamCredential)
	require.NoError(t, err)
	assert.Equal(t, []byte("refreshed"), got)
	got, err = OpenConnectionField(ring(t, "k2"), c, FieldNotionToken, c.NotionToken)
	require.NoError(t, err)
	assert.Equal(t, []byte("notion-ca"), got)
}

// cancellingStore cancels the job's context after n connection updates,
// as a kill would stop it midway.
type cancellingStore struct {
	store.Store
	n      int
	cancel context.CancelFunc
}

func (s *cancellingStore) UpdateConnection(ctx context.Context, id string, fn func(store.Connection) (store.Connection, error)) error {
	err := s.Store.UpdateConnection(ctx, id, fn)
	if s.n--; s.n == 0 {
		s.cancel()
	}
	return err
}

// TestResealInterrupted_F2: a re-seal stopped midway leaves every record
// openable with the keyring (each record moves in its own transaction),
// Run returns when its context ends, and a new job finishes the rest.
func TestResealInterrupted_F2(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	w := fill(t, mem, ring(t, "k1"), "", 5)
	k := ring(t, "k2", "k1")
	ctx, cancel := context.WithCancel(t.Context())
	st := &cancellingStore{Store: mem, n: 2, cancel: cancel}
	immediate := clocktest.NewStepping(rotationNow).After
	r := NewResealer(ResealerOptions{Store: st, Keyring: k, Now: func() time.Time { return rotationNow }, After: immediate, Rate: 1})
	r.Run(ctx) // returns once cancelled
	u := usageOf(t, mem, k)
	assert.Equal(t, 2, u["k2"].Connections, "stopped after two records")
	assert.Equal(t, 3, u["k1"].Connections)
	for id := range w.conns {
		c, err := mem.GetConnection(t.Context(), id)
		require.NoError(t, err)
		_, err = OpenConnectionField(k, c, FieldUpstreamCredential, c.UpstreamCredential)
		require.NoError(t, err, id)
	}

	// "Restart": a new job scans again and finishes.
	NewResealer(ResealerOptions{Store: mem, Keyring: k, Now: func() time.Time { return rotationNow }, After: immediate}).Run(t.Context())
	w.opens(t, mem, ring(t, "k2"), "k2")
}

// TestDropRemovedKeys_TH42: the way out when an old key is lost: its
// connections become "reconnect required", its flows and successors go,
// and the check then passes; a key still in the keyring is refused.
func TestDropRemovedKeys_TH42(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := memory.New()
	fill(t, st, ring(t, "k1"), "", 2)
	fill(t, st, ring(t, "k2"), "keep-", 1)
	k := ring(t, "k2")

	_, err := DropRemovedKeys(ctx, st, k, []string{"k2"}, rotationNow)
	require.ErrorContains(t, err, `drop key "k2": it is still in the keyring`)

	done, err := DropRemovedKeys(ctx, st, k, []string{"k1"}, rotationNow)
	require.NoError(t, err)
	assert.Equal(t, KeyUsage{Connections: 2, Flows: 1, Successors: 1}, done)
	require.NoError(t, CheckRemovedKeys(ctx, st, k, rotationNow))
	for _, id := range []string{"ca", "cb"} {
		c, err := st.GetConnection(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, store.StatusReconnect, c.Status)
		assert.Equal(t, "key rotation", c.Reconnect.Call)
	}
	c, err := st.GetConnection(ctx, "keep-ca")
	require.NoError(t, err)
	assert.Equal(t, store.StatusActive, c.Status, "records of other keys are untouched")
	u := usageOf(t, st, k)
	assert.Equal(t, KeyUsage{ID: "k1", Connections: 2, ReconnectRequired: 2}, u["k1"])
	assert.Equal(t, 3, u["k2"].Needed())

	again, err := DropRemovedKeys(ctx, st, k, []string{"k1"}, rotationNow)
	require.NoError(t, err)
	assert.Equal(t, KeyUsage{}, again, "dropping twice changes nothing")
}

// TestRemovedKeyErrorMessage pins the operator's message.
func TestRemovedKeyErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		u    KeyUsage
		want string
	}{
		{"mixed", KeyUsage{ID: "k1", Connections: 11, ReconnectRequired: 1, Flows: 2},
			"key \"k1\" was removed but still seals 12 stored records (10 connections, 2 pending flows); put it back until `unfurld status` shows 0 for it, or start once with --drop-key k1 to accept that those users must reconnect"},
		{"one", KeyUsage{ID: "old", Successors: 1},
			"key \"old\" was removed but still seals 1 stored record (1 refresh successor); put it back until `unfurld status` shows 0 for it, or start once with --drop-key old to accept that those users must reconnect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, (&RemovedKeyError{Usage: tc.u}).Error())
		})
	}
}

// flowFailingStore fails every flow update, as a damaged record would.
type flowFailingStore struct{ store.Store }

func (flowFailingStore) UpdateFlow(context.Context, string, time.Time, func(store.Flow) (store.Flow, error)) error {
	return errDiskOnFire
}

var errDiskOnFire = errors.New("disk on fire")

// TestResealPassesOverFailures: a record the store fails on is reported
// (the error reaches Run's log) and passed over, so the job still ends
// and moves the rest.
func TestResealPassesOverFailures(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mem := memory.New()
	fill(t, mem, ring(t, "k1"), "", 1)
	k := ring(t, "k2", "k1")
	r := newTestResealer(flowFailingStore{mem}, k)
	var errs []error
	done := false
	for i := 0; i < 10 && !done; i++ {
		var err error
		done, err = r.Step(ctx, 100)
		if err != nil {
			errs = append(errs, err)
		}
	}
	require.True(t, done)
	require.Len(t, errs, 1, "reported once")
	assert.ErrorIs(t, errs[0], errDiskOnFire)
	u := usageOf(t, mem, k)
	assert.Equal(t, KeyUsage{ID: "k1", InKeyring: true, Flows: 1}, u["k1"])
	assert.Equal(t, 2, u["k2"].Needed())
}
