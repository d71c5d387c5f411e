package sealing

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testKey returns a deterministic 32-byte key whose bytes start at seed.
// Fixed keys keep the fuzz corpus valid across fuzz worker processes.
func testKey(seed byte) []byte {
	b := make([]byte, keySize)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// keyTexts lists every text form of key that must never show up in
// printed output or error strings.
func keyTexts(key []byte) []string {
	return []string{
		base64.StdEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key),
		base64.RawURLEncoding.EncodeToString(key),
		hex.EncodeToString(key),
		string(key),
		fmt.Sprint(key), // [1 2 3 ...]
		fmt.Sprintf("%x", key[:8]),
		fmt.Sprintf("%v", key[:8]),
	}
}

// newTestKeyring builds a keyring with primary id and key testKey(seed).
func newTestKeyring(t testing.TB, id string, seed byte) *Keyring {
	t.Helper()
	k, err := NewKeyring(id, testKey(seed), nil)
	require.NoError(t, err)
	return k
}

const testAAD = "connections/c1/upstream_credential/v1"

// TestKeyringRoundTrip covers TH-41: values of any size come back intact.
func TestKeyringRoundTrip(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, "k1", 1)
	tests := []struct {
		name      string
		plaintext []byte
	}{
		{"empty", []byte{}},
		{"one byte", []byte{0}},
		{"token", []byte("ya29.a0AfH6SMB-upstream-access-token")},
		{"binary", testKey(200)},
		{"large", bytes.Repeat([]byte("x"), 1<<16)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := k.Seal(tc.plaintext, []byte(testAAD))
			require.NoError(t, err)
			assert.Len(t, sealed, 2+len("k1")+nonceSize+len(tc.plaintext)+tagSize)
			assert.Equal(t, []byte{sealVersion, 2, 'k', '1'}, sealed[:4], "header")
			got, err := k.Open(sealed, []byte(testAAD))
			require.NoError(t, err)
			assert.Equal(t, tc.plaintext, got)
			assert.False(t, k.NeedsReseal(sealed))
		})
	}
}

// TestKeyringSealHidesPlaintext covers TH-41's "a raw scan of the DB file
// finds no secret": the sealed bytes do not contain the secret.
func TestKeyringSealHidesPlaintext(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, "k1", 1)
	secret := []byte("ufd-secret-upstream-refresh-token-0123456789")
	sealed, err := k.Seal(secret, []byte(testAAD))
	require.NoError(t, err)
	assert.NotContains(t, string(sealed), string(secret))
	assert.NotContains(t, string(sealed), string(secret[:8]))
}

// TestKeyringSealRandomNonce: sealing the same plaintext twice gives
// different outputs (random nonce, TH-41), and both open.
func TestKeyringSealRandomNonce(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, "k1", 1)
	seen := map[string]bool{}
	for range 64 {
		sealed, err := k.Seal([]byte("same"), []byte(testAAD))
		require.NoError(t, err)
		require.False(t, seen[string(sealed)], "repeated sealed value")
		seen[string(sealed)] = true
		nonce := string(sealed[4 : 4+nonceSize])
		require.False(t, seen["nonce"+nonce], "repeated nonce")
		seen["nonce"+nonce] = true
		got, err := k.Open(sealed, []byte(testAAD))
		require.NoError(t, err)
		require.Equal(t, []byte("same"), got)
	}
}

// TestKeyringSealRejectsEmptyAAD: a seal without a record identity could
// be moved between records (TH-41), so Seal refuses it.
func TestKeyringSealRejectsEmptyAAD(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, "k1", 1)
	for _, aad := range [][]byte{nil, {}} {
		sealed, err := k.Seal([]byte("secret"), aad)
		require.Error(t, err)
		assert.Nil(t, sealed)
		assert.EqualError(t, err, "seal: aad is empty, want the record identity")
	}
}

// TestKeyringWrongAAD covers TH-41: a ciphertext moved to another record
// (another bucket, key, provider or schema version) fails to open.
func TestKeyringWrongAAD(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, "k1", 1)
	sealed, err := k.Seal([]byte("secret"), []byte(testAAD))
	require.NoError(t, err)
	tests := []struct {
		name string
		aad  string
	}{
		{"other record id", "connections/c2/upstream_credential/v1"},
		{"other field", "connections/c1/notion_token/v1"},
		{"other schema version", "connections/c1/upstream_credential/v2"},
		{"other bucket", "grants/c1/upstream_credential/v1"},
		{"prefix", "connections/c1/upstream_credential/"},
		{"extension", testAAD + "/x"},
		{"case", strings.ToUpper(testAAD)},
		{"empty", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := k.Open(sealed, []byte(tc.aad))
			require.ErrorIs(t, err, ErrSealBroken)
			assert.Nil(t, got)
		})
	}
}

// TestKeyringTamper covers TH-41: flipping any bit of any byte, or adding
// bytes, makes Open fail with one of the two sentinels. Header bytes are
// authenticated too, so even a key id edit fails.
func TestKeyringTamper(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, "k1", 1)
	sealed, err := k.Seal([]byte("a secret worth tampering with"), []byte(testAAD))
	require.NoError(t, err)
	headerLen := 2 + len("k1")
	for i := range sealed {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			t.Run(fmt.Sprintf("byte %d mask %#x", i, mask), func(t *testing.T) {
				t.Parallel()
				bad := bytes.Clone(sealed)
				bad[i] ^= mask
				got, err := k.Open(bad, []byte(testAAD))
				require.Error(t, err)
				assert.Nil(t, got)
				if i >= headerLen {
					assert.ErrorIs(t, err, ErrSealBroken)
				} else {
					assert.True(t, errors.Is(err, ErrSealBroken) || errors.Is(err, ErrKeyUnavailable), "err = %v", err)
				}
			})
		}
	}
	t.Run("appended byte", func(t *testing.T) {
		t.Parallel()
		_, err := k.Open(append(bytes.Clone(sealed), 0), []byte(testAAD))
		require.ErrorIs(t, err, ErrSealBroken)
	})
	t.Run("prepended byte", func(t *testing.T) {
		t.Parallel()
		_, err := k.Open(append([]byte{sealVersion}, sealed...), []byte(testAAD))
		require.ErrorIs(t, err, ErrSealBroken)
	})
}

// TestKeyringHeaderIsAuthenticated: rewriting the key id to another key of
// the same ring does not make the value open under that key; the header is
// part of the GCM additional data (TH-41, TH-42).
func TestKeyringHeaderIsAuthenticated(t *testing.T) {
	t.Parallel()
	k, err := NewKeyring("k1", testKey(1), map[string][]byte{"k2": testKey(2)})
	require.NoError(t, err)
	sealed, err := k.Seal([]byte("secret"), []byte(testAAD))
	require.NoError(t, err)
	bad := bytes.Clone(sealed)
	bad[3] = '2' // "k1" -> "k2"
	_, err = k.Open(bad, []byte(testAAD))
	require.ErrorIs(t, err, ErrSealBroken)
	assert.EqualError(t, err, "open with key k2: sealed value is broken")

	t.Run("same key bytes other id", func(t *testing.T) {
		// Only the header binding stops this one: the key is the same.
		relabeled := newTestKeyring(t, "k2", 1)
		_, err := relabeled.Open(bad, []byte(testAAD))
		require.ErrorIs(t, err, ErrSealBroken)
		good, err := relabeled.Seal([]byte("secret"), []byte(testAAD))
		require.NoError(t, err)
		_, err = relabeled.Open(good, []byte(testAAD))
		require.NoError(t, err)
	})

	t.Run("same id other key bytes", func(t *testing.T) {
		other := newTestKeyring(t, "k1", 99)
		_, err := other.Open(sealed, []byte(testAAD))
		require.ErrorIs(t, err, ErrSealBroken)
	})
}

// TestKeyringTruncated: every prefix of a sealed value fails with
// ErrSealBroken and nothing panics (TH-41, TH-45 spirit).
func TestKeyringTruncated(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, "k1", 1)
	sealed, err := k.Seal([]byte("secret"), []byte(testAAD))
	require.NoError(t, err)
	for n := range len(sealed) {
		t.Run(fmt.Sprintf("len %d", n), func(t *testing.T) {
			t.Parallel()
			var got []byte
			var err error
			require.NotPanics(t, func() {
				got, err = k.Open(sealed[:n], []byte(testAAD))
				_ = k.NeedsReseal(sealed[:n])
			})
			require.ErrorIs(t, err, ErrSealBroken)
			assert.Nil(t, got)
		})
	}
}

// TestKeyringOpenMalformedHeader names each header check.
func TestKeyringOpenMalformedHeader(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, "k1", 1)
	body := make([]byte, nonceSize+tagSize)
	tests := []struct {
		name    string
		sealed  []byte
		wantErr string
		is      error
	}{
		{"nil", nil, "sealed value is 0 bytes: sealed value is broken", ErrSealBroken},
		{"version 0", append([]byte{0, 2, 'k', '1'}, body...), "sealed value has version 0, want 1: sealed value is broken", ErrSealBroken},
		{"version 2", append([]byte{2, 2, 'k', '1'}, body...), "sealed value has version 2, want 1: sealed value is broken", ErrSealBroken},
		{"id length 0", append([]byte{1, 0}, body...), "sealed value has key id length 0: sealed value is broken", ErrSealBroken},
		{"id length 17", append(append([]byte{1, 17}, bytes.Repeat([]byte("a"), 17)...), body...), "sealed value has key id length 17: sealed value is broken", ErrSealBroken},
		{"id not printable", append([]byte{1, 2, 'k', '\n'}, body...), "sealed value has an invalid key id: sealed value is broken", ErrSealBroken},
		{"id upper case", append([]byte{1, 2, 'K', '1'}, body...), "sealed value has an invalid key id: sealed value is broken", ErrSealBroken},
		{"unknown id", append([]byte{1, 2, 'k', '9'}, body...), "open with key k9: sealing key is not in the keyring", ErrKeyUnavailable},
		{"zero body", append([]byte{1, 2, 'k', '1'}, body...), "open with key k1: sealed value is broken", ErrSealBroken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := k.Open(tc.sealed, []byte(testAAD))
			require.ErrorIs(t, err, tc.is)
			assert.EqualError(t, err, tc.wantErr)
			assert.Nil(t, got)
		})
	}
}

// TestKeyringRotation covers TH-42: old keys open, only the primary seals,
// NeedsReseal finds old records, and a retired key gives ErrKeyUnavailable
// (reconnect required), never plaintext.
func TestKeyringRotation(t *testing.T) {
	t.Parallel()
	k1Only := newTestKeyring(t, "k1", 1)
	old, err := k1Only.Seal([]byte("upstream token"), []byte(testAAD))
	require.NoError(t, err)

	rotated, err := NewKeyring("k2", testKey(2), map[string][]byte{"k1": testKey(1)})
	require.NoError(t, err)
	k2Only := newTestKeyring(t, "k2", 2)

	tests := []struct {
		name        string
		ring        *Keyring
		wantOpen    bool
		wantErr     error
		needsReseal bool
	}{
		{"old keyring", k1Only, true, nil, false},
		{"k2 primary plus k1", rotated, true, nil, true},
		{"k1 retired", k2Only, false, ErrKeyUnavailable, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.needsReseal, tc.ring.NeedsReseal(old))
			got, err := tc.ring.Open(old, []byte(testAAD))
			if !tc.wantOpen {
				require.ErrorIs(t, err, tc.wantErr)
				assert.NotErrorIs(t, err, ErrSealBroken)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, []byte("upstream token"), got)
		})
	}

	t.Run("reseal", func(t *testing.T) {
		t.Parallel()
		pt, err := rotated.Open(old, []byte(testAAD))
		require.NoError(t, err)
		fresh, err := rotated.Seal(pt, []byte(testAAD))
		require.NoError(t, err)
		assert.Equal(t, []byte{sealVersion, 2, 'k', '2'}, fresh[:4])
		assert.False(t, rotated.NeedsReseal(fresh))
		got, err := k2Only.Open(fresh, []byte(testAAD))
		require.NoError(t, err)
		assert.Equal(t, []byte("upstream token"), got)
		_, err = k1Only.Open(fresh, []byte(testAAD))
		require.ErrorIs(t, err, ErrKeyUnavailable)
	})

	t.Run("garbage does not need reseal", func(t *testing.T) {
		t.Parallel()
		assert.False(t, rotated.NeedsReseal(nil))
		assert.False(t, rotated.NeedsReseal([]byte{9, 9, 9}))
	})
}

// TestKeyringSealLimit covers TH-42: a key seals at most sealLimit values
// per process, then Seal asks for a rotation; opening still works, and a
// new primary seals again.
func TestKeyringSealLimit(t *testing.T) {
	t.Parallel()
	assert.Equal(t, uint64(1<<31), newTestKeyring(t, "k1", 1).sealLimit)

	k := newTestKeyring(t, "k1", 1)
	k.sealLimit = 3
	var last []byte
	for range 3 {
		var err error
		last, err = k.Seal([]byte("s"), []byte(testAAD))
		require.NoError(t, err)
	}
	sealed, err := k.Seal([]byte("s"), []byte(testAAD))
	require.ErrorIs(t, err, ErrKeyExhausted)
	assert.EqualError(t, err, "seal with key k1: primary key reached its seal limit, rotate to a new primary key")
	assert.Nil(t, sealed)
	_, err = k.Seal([]byte("s"), []byte(testAAD))
	require.ErrorIs(t, err, ErrKeyExhausted, "stays exhausted")

	got, err := k.Open(last, []byte(testAAD))
	require.NoError(t, err)
	assert.Equal(t, []byte("s"), got)

	rotated, err := NewKeyring("k2", testKey(2), map[string][]byte{"k1": testKey(1)})
	require.NoError(t, err)
	rotated.sealLimit = 3
	_, err = rotated.Seal([]byte("s"), []byte(testAAD))
	require.NoError(t, err)
}

// TestKeyringSealLimitConcurrent: under concurrent Seal calls exactly
// sealLimit seals succeed (run with -race).
func TestKeyringSealLimitConcurrent(t *testing.T) {
	t.Parallel()
	k := newTestKeyring(t, "k1", 1)
	k.sealLimit = 500
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, fail int
	)
	for range 8 {
		wg.Go(func() {
			for range 100 {
				_, err := k.Seal([]byte("s"), []byte(testAAD))
				mu.Lock()
				if err == nil {
					ok++
				} else if errors.Is(err, ErrKeyExhausted) {
					fail++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 500, ok)
	assert.Equal(t, 300, fail)
}

// TestParseKeyring covers TH-42: good specs in every base64 flavour, and
// bad specs refused with exact messages that never contain key text.
func TestParseKeyring(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey(1), testKey(2)
	std := base64.StdEncoding.EncodeToString
	good := []struct {
		name    string
		spec    string
		primary string
		ids     []string
		keys    map[string][]byte
	}{
		{"single std padded", "k1:" + std(k1), "k1", []string{"k1"}, map[string][]byte{"k1": k1}},
		{"std raw", "k1:" + base64.RawStdEncoding.EncodeToString(k1), "k1", []string{"k1"}, map[string][]byte{"k1": k1}},
		{"url padded", "k1:" + base64.URLEncoding.EncodeToString(k1), "k1", []string{"k1"}, map[string][]byte{"k1": k1}},
		{"url raw", "k1:" + base64.RawURLEncoding.EncodeToString(k1), "k1", []string{"k1"}, map[string][]byte{"k1": k1}},
		{"two keys first primary", "k2:" + std(k2) + ",k1:" + std(k1), "k2", []string{"k2", "k1"}, map[string][]byte{"k1": k1, "k2": k2}},
		{"spaces", "  k2 : " + std(k2) + " ,\tk1:" + std(k1) + "\n", "k2", []string{"k2", "k1"}, map[string][]byte{"k1": k1, "k2": k2}},
		{"id alphabet", "a_b-0123456789xy:" + std(k1), "a_b-0123456789xy", []string{"a_b-0123456789xy"}, map[string][]byte{"a_b-0123456789xy": k1}},
		{"long id", "abcdefghijklmnop:" + std(k1), "abcdefghijklmnop", []string{"abcdefghijklmnop"}, map[string][]byte{"abcdefghijklmnop": k1}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := ParseKeyring(tc.spec)
			require.NoError(t, err)
			assert.Equal(t, tc.primary, k.PrimaryID())
			assert.Equal(t, tc.ids, k.ids)
			// Each key opens what the same raw key seals.
			for id, raw := range tc.keys {
				single, err := NewKeyring(id, raw, nil)
				require.NoError(t, err)
				sealed, err := single.Seal([]byte("x"), []byte(testAAD))
				require.NoError(t, err)
				got, err := k.Open(sealed, []byte(testAAD))
				require.NoError(t, err, id)
				assert.Equal(t, []byte("x"), got)
			}
		})
	}

	k31 := base64.StdEncoding.EncodeToString(k1[:31])
	k33 := base64.StdEncoding.EncodeToString(append(bytes.Clone(k1), 7))
	zero := base64.StdEncoding.EncodeToString(make([]byte, 32))
	notB64 := "!" + std(k1)[1:]
	mixed := strings.Replace(base64.RawURLEncoding.EncodeToString(testKey(0xf8)), "_", "/", 1)
	bad := []struct {
		name    string
		spec    string
		wantErr string
	}{
		{"empty", "", "keyring is empty"},
		{"blank", " \t\n", "keyring is empty"},
		{"short key", "k1:" + k31, "key k1 is 31 bytes, want 32"},
		{"long key", "k1:" + k33, "key k1 is 33 bytes, want 32"},
		{"empty key", "k1:", "key k1 is 0 bytes, want 32"},
		{"zero key", "k1:" + zero, "key k1 is all zero bytes"},
		{"not base64", "k1:" + notB64, "key k1 is not base64"},
		{"mixed alphabets", "k1:" + mixed, "key k1 is not base64"},
		{"bad padding", "k1:" + std(k1) + "=", "key k1 is not base64"},
		{"duplicate", "k1:" + std(k1) + ",k1:" + std(k2), "duplicate key id k1"},
		{"same bytes", "k2:" + std(k1) + ",k1:" + std(k1), "key k1 has the same bytes as key k2"},
		{"duplicate second", "k2:" + std(k2) + ",k1:" + std(k1) + ",k1:" + std(k1), "duplicate key id k1"},
		{"no id", std(k1), "keyring entry 1 has no key id, want id:base64key"},
		{"no id second", "k1:" + std(k1) + "," + std(k2), "keyring entry 2 has no key id, want id:base64key"},
		{"empty id", ":" + std(k1), "keyring entry 1 has an invalid key id, want [a-z0-9_-]{1,16}"},
		{"upper case id", "K1:" + std(k1), "keyring entry 1 has an invalid key id, want [a-z0-9_-]{1,16}"},
		{"id too long", "abcdefghijklmnopq:" + std(k1), "keyring entry 1 has an invalid key id, want [a-z0-9_-]{1,16}"},
		{"key as id", std(k1) + ":" + std(k2), "keyring entry 1 has an invalid key id, want [a-z0-9_-]{1,16}"},
		{"trailing comma", "k1:" + std(k1) + ",", "keyring entry 2 is empty"},
		{"empty middle", "k1:" + std(k1) + ",,k2:" + std(k2), "keyring entry 2 is empty"},
		{"extra colon", "k1:" + std(k1) + ":x", "key k1 is not base64"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := ParseKeyring(tc.spec)
			require.Error(t, err)
			assert.Nil(t, k)
			assert.EqualError(t, err, tc.wantErr)
			for _, secret := range []string{std(k1), std(k2), k31, k33, notB64, mixed, std(k1)[:12], std(k2)[:12]} {
				assert.NotContains(t, err.Error(), secret, "error leaks key text")
			}
		})
	}
}

// TestNewKeyring covers construction errors and that the keyring does not
// keep the caller's key slices.
func TestNewKeyring(t *testing.T) {
	t.Parallel()
	bad := []struct {
		name    string
		id      string
		key     []byte
		others  map[string][]byte
		wantErr string
	}{
		{"short primary", "k1", testKey(1)[:16], nil, "key k1 is 16 bytes, want 32"},
		{"nil primary", "k1", nil, nil, "key k1 is 0 bytes, want 32"},
		{"bad primary id", "K1", testKey(1), nil, "invalid key id, want [a-z0-9_-]{1,16}"},
		{"bad other id", "k1", testKey(1), map[string][]byte{"a b": testKey(2)}, "invalid key id, want [a-z0-9_-]{1,16}"},
		{"short other", "k1", testKey(1), map[string][]byte{"k2": testKey(2)[:31]}, "key k2 is 31 bytes, want 32"},
		{"other repeats primary", "k1", testKey(1), map[string][]byte{"k1": testKey(2)}, "duplicate key id k1"},
		{"zero other", "k1", testKey(1), map[string][]byte{"k0": make([]byte, 32)}, "key k0 is all zero bytes"},
		{"same bytes as primary", "k1", testKey(1), map[string][]byte{"k2": testKey(1)}, "key k2 has the same bytes as key k1"},
		{"same bytes as other", "k1", testKey(1), map[string][]byte{"k2": testKey(2), "k3": testKey(2)}, "key k3 has the same bytes as key k2"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k, err := NewKeyring(tc.id, tc.key, tc.others)
			assert.Nil(t, k)
			require.EqualError(t, err, tc.wantErr)
		})
	}

	t.Run("caller may wipe key", func(t *testing.T) {
		t.Parallel()
		key := testKey(1)
		k, err := NewKeyring("k1", key, nil)
		require.NoError(t, err)
		clear(key)
		sealed, err := k.Seal([]byte("x"), []byte(testAAD))
		require.NoError(t, err)
		got, err := newTestKeyring(t, "k1", 1).Open(sealed, []byte(testAAD))
		require.NoError(t, err)
		assert.Equal(t, []byte("x"), got)
	})
}

// TestGenerateKeySpec: a generated spec parses and is fresh each time.
func TestGenerateKeySpec(t *testing.T) {
	t.Parallel()
	a, b := GenerateKeySpec("dev"), GenerateKeySpec("dev")
	assert.NotEqual(t, a, b)
	assert.True(t, strings.HasPrefix(a, "dev:"))
	k, err := ParseKeyring(a)
	require.NoError(t, err)
	assert.Equal(t, "dev", k.PrimaryID())
	_, err = ParseKeyring(b + "," + strings.Replace(a, "dev:", "old:", 1))
	require.NoError(t, err)
}

// TestKeyringPrinting covers TH-42 and TH-49: no way of printing or
// logging a keyring shows key bytes, only ids.
func TestKeyringPrinting(t *testing.T) {
	t.Parallel()
	k1, k2 := testKey(1), testKey(2)
	k, err := NewKeyring("k2", k2, map[string][]byte{"k1": k1})
	require.NoError(t, err)

	// holder puts the keyring where fmt would walk fields reflectively.
	type holder struct {
		Ring *Keyring
		ring Keyring
	}
	h := holder{Ring: k, ring: *k}

	var logs bytes.Buffer
	text := slog.New(slog.NewTextHandler(&logs, nil))
	text.Info("start", "keyring", k, "value", *k)
	jsonLog := slog.New(slog.NewJSONHandler(&logs, nil))
	jsonLog.Info("start", slog.Any("keyring", k), "value", *k)
	js, err := json.Marshal(k)
	require.NoError(t, err)
	jsHolder, err := json.Marshal(h)
	require.NoError(t, err)

	outputs := map[string]string{
		"%v":            fmt.Sprintf("%v", k),
		"%s":            fmt.Sprintf("%s", k),
		"%+v":           fmt.Sprintf("%+v", k),
		"%#v":           fmt.Sprintf("%#v", k),
		"%x":            fmt.Sprintf("%x", k),
		"%q":            fmt.Sprintf("%q", k),
		"value %v":      fmt.Sprintf("%v", *k),
		"value %+v":     fmt.Sprintf("%+v", *k),
		"value %#v":     fmt.Sprintf("%#v", *k),
		"holder %v":     fmt.Sprintf("%v", h),
		"holder %+v":    fmt.Sprintf("%+v", h),
		"holder %#v":    fmt.Sprintf("%#v", h),
		"println":       fmt.Sprintln(k, *k),
		"json":          string(js),
		"json holder":   string(jsHolder),
		"slog":          logs.String(),
		"error wrap %v": fmt.Errorf("load %v: %w", k, errors.New("x")).Error(),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, key := range [][]byte{k1, k2} {
				for _, secret := range keyTexts(key) {
					assert.NotContains(t, out, secret)
				}
			}
		})
	}

	assert.Equal(t, "keyring(primary=k2 keys=k2,k1)", outputs["%v"])
	assert.Equal(t, outputs["%v"], outputs["%s"])
	assert.Equal(t, outputs["%v"], outputs["%+v"])
	assert.Equal(t, `sealing.Keyring{primary: "k2", keys: ["k2" "k1"]}`, outputs["%#v"])
	assert.JSONEq(t, `{"primary":"k2","keys":["k2","k1"]}`, outputs["json"])
	assert.Contains(t, outputs["slog"], "keyring.primary=k2")
	assert.Contains(t, outputs["slog"], `"keyring":{"primary":"k2","keys":["k2","k1"]}`)

	t.Run("zero and nil", func(t *testing.T) {
		t.Parallel()
		var zero Keyring
		var nilRing *Keyring
		assert.Equal(t, "keyring(primary= keys=)", fmt.Sprint(zero))
		assert.Equal(t, "<nil>", fmt.Sprint(nilRing))
		_, err := zero.Seal([]byte("x"), []byte(testAAD))
		require.EqualError(t, err, "seal: keyring has no primary key, build it with ParseKeyring or NewKeyring")
		_, err = zero.Open([]byte{1, 2, 'k', '1'}, []byte(testAAD))
		require.ErrorIs(t, err, ErrSealBroken)
		assert.False(t, zero.NeedsReseal(nil))
		assert.Empty(t, zero.PrimaryID())
	})
}

// FuzzOpen: Open and NeedsReseal never panic on arbitrary input, every
// failure wraps one of the two sentinels, and nothing but a real seal
// opens (TH-41).
func FuzzOpen(f *testing.F) {
	const plaintext = "fuzz plaintext"
	k, err := NewKeyring("k1", testKey(1), map[string][]byte{"old": testKey(2)})
	require.NoError(f, err)
	sealed, err := k.Seal([]byte(plaintext), []byte(testAAD))
	require.NoError(f, err)
	old, err := NewKeyring("old", testKey(2), nil)
	require.NoError(f, err)
	sealedOld, err := old.Seal([]byte(plaintext), []byte(testAAD))
	require.NoError(f, err)

	f.Add(sealed, []byte(testAAD))
	f.Add(sealedOld, []byte(testAAD))
	f.Add(sealed[:len(sealed)-1], []byte(testAAD))
	f.Add([]byte{}, []byte{})
	f.Add([]byte{1, 2, 'k', '9'}, []byte("x"))
	f.Add([]byte{1, 255}, []byte("x"))
	f.Fuzz(func(t *testing.T, data, aad []byte) {
		_ = k.NeedsReseal(data)
		got, err := k.Open(data, aad)
		if err != nil {
			if !errors.Is(err, ErrSealBroken) && !errors.Is(err, ErrKeyUnavailable) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if got != nil {
				t.Fatalf("plaintext returned with error %v", err)
			}
			return
		}
		if string(got) != plaintext || string(aad) != testAAD {
			t.Fatalf("forged open: %q with aad %q", got, aad)
		}
	})
}

// benchmarkSecret is the size of a typical upstream refresh token record.
func benchmarkSecret() []byte { return bytes.Repeat([]byte("s"), 200) }

// BenchmarkSeal measures sealing a 200-byte secret.
func BenchmarkSeal(b *testing.B) {
	k := newTestKeyring(b, "k1", 1)
	aad, secret := []byte(testAAD), benchmarkSecret()
	b.SetBytes(int64(len(secret)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Seal(secret, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures opening a 200-byte secret.
func BenchmarkOpen(b *testing.B) {
	k := newTestKeyring(b, "k1", 1)
	aad, secret := []byte(testAAD), benchmarkSecret()
	sealed, err := k.Seal(secret, aad)
	require.NoError(b, err)
	b.SetBytes(int64(len(secret)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(sealed, aad); err != nil {
			b.Fatal(err)
		}
	}
}
