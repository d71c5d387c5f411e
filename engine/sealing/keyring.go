package sealing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
)

// Sealed value layout (security.md TH-41, TH-42):
//
//	byte 0        format version, sealVersion (1)
//	byte 1        n, the length of the key id (1..16)
//	bytes 2..2+n  key id, [a-z0-9_-]
//	next 12       random 96-bit GCM nonce
//	rest          AES-256-GCM ciphertext followed by its 16-byte tag
//
// The GCM additional data is the header (bytes 0..2+n) followed by the
// caller's aad. Binding the header means a key id or version byte edited in
// the database fails to open instead of being tried under another key; the
// header is self-delimiting, so header||aad cannot be confused with another
// header and aad. The caller's aad is the record identity, so a ciphertext
// copied into another record fails to open (TH-41).
//
// Sealing uses cipher.NewGCMWithRandomNonce: it draws the nonce from
// crypto/rand inside the (FIPS 140-3 approved) GCM implementation and
// writes nonce||ciphertext||tag, which is exactly the tail of the layout
// above, so the format is the same as with cipher.NewGCM and an explicit
// nonce.
const (
	sealVersion = 1
	keySize     = 32 // AES-256
	maxIDLen    = 16
	nonceSize   = 12
	tagSize     = 16
)

// defaultSealLimit caps seals per key per process. Random 96-bit nonces
// keep the chance of a nonce collision (which breaks GCM: it leaks the XOR
// of plaintexts and lets an attacker forge tags) below 2^-32 only for up to
// 2^32 messages per key (NIST SP 800-38D 8.3). We stop at half of that so
// the limit is hit long before the bound, and ask for a rotation.
//
// The count lives in memory: a restart resets it. It is a safety net, not
// an accounting of the key's lifetime; rotate keys on a schedule anyway.
const defaultSealLimit = 1 << 31

// ErrSealBroken means a sealed value failed to open: it was tampered with,
// truncated, sealed for another record (wrong aad) or under other key bytes
// with the same id. The record cannot be trusted and must be replaced.
var ErrSealBroken = errors.New("sealed value is broken")

// ErrKeyUnavailable means a sealed value names a key id the keyring does not
// hold, usually because the key was retired. The record then needs a
// reconnect; there is never a plaintext fallback (TH-42).
var ErrKeyUnavailable = errors.New("sealing key is not in the keyring")

// ErrKeyExhausted means the primary key reached its seal limit in this
// process; an operator must add a new primary key (TH-42).
var ErrKeyExhausted = errors.New("primary key reached its seal limit, rotate to a new primary key")

// Keyring seals and opens secrets with AES-256-GCM. One primary key seals;
// every key opens (rotation). A Keyring is safe for concurrent use.
//
// It never keeps raw key bytes, only the AEADs built from them, and every
// way of printing it (fmt, slog, JSON) shows key ids only.
type Keyring struct {
	primary *sealKey
	keys    map[string]*sealKey
	// ids lists the key ids, primary first then the others sorted, so the
	// printed form is stable.
	ids []string
	// sealLimit is the number of seals allowed per key; tests lower it.
	sealLimit uint64
}

// sealKey is one key of the ring. It is always held by pointer so that a
// reflective dump of a Keyring (fmt on a struct that embeds one in an
// unexported field) prints addresses, never the AES key schedule.
type sealKey struct {
	id    string
	aead  cipher.AEAD
	seals atomic.Uint64
}

// ParseKeyring reads keys from a spec string like "k2:BASE64KEY,k1:BASE64KEY"
// (first = primary). Key ids match [a-z0-9_-]{1,16}. Keys are 32 bytes in
// standard or URL base64, with or without padding. Spaces around entries,
// ids and keys are ignored, since the spec usually comes from an
// environment variable.
//
// Errors never contain key material: they name a key by its id, or by its
// position when the id itself is unusable (it might be a key pasted in the
// wrong place).
func ParseKeyring(spec string) (*Keyring, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("keyring is empty")
	}
	var (
		ids []string
		raw = map[string][]byte{}
	)
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("keyring entry %d is empty", i+1)
		}
		id, b64, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, fmt.Errorf("keyring entry %d has no key id, want id:base64key", i+1)
		}
		id = strings.TrimSpace(id)
		if !validKeyID(id) {
			return nil, fmt.Errorf("keyring entry %d has an invalid key id, want [a-z0-9_-]{1,16}", i+1)
		}
		if _, dup := raw[id]; dup {
			return nil, fmt.Errorf("duplicate key id %s", id)
		}
		key, ok := decodeKey(strings.TrimSpace(b64))
		if !ok {
			return nil, fmt.Errorf("key %s is not base64", id)
		}
		ids = append(ids, id)
		raw[id] = key
	}
	others := make(map[string][]byte, len(ids)-1)
	for _, id := range ids[1:] {
		others[id] = raw[id]
	}
	return NewKeyring(ids[0], raw[ids[0]], others)
}

// decodeKey accepts the four base64 flavours. The padded decoders reject
// missing padding and the raw ones reject '=', so at most one alphabet
// family matches a given text. The decoder's error is dropped on purpose:
// it adds nothing to "not base64" and we keep key text out of messages.
func decodeKey(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.URLEncoding,
		base64.RawStdEncoding, base64.RawURLEncoding,
	} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// NewKeyring builds a keyring from ids and raw keys (first primary); for
// tests and generated dev keys. The key bytes are not retained: callers may
// wipe their slices afterwards.
func NewKeyring(primaryID string, primary []byte, others map[string][]byte) (*Keyring, error) {
	p, err := newSealKey(primaryID, primary)
	if err != nil {
		return nil, err
	}
	k := &Keyring{
		primary:   p,
		keys:      map[string]*sealKey{primaryID: p},
		ids:       []string{primaryID},
		sealLimit: defaultSealLimit,
	}
	rest := make([]string, 0, len(others))
	for id := range others {
		rest = append(rest, id)
	}
	slices.Sort(rest) // deterministic error order and printed form
	seen := map[string][]byte{primaryID: primary}
	for _, id := range rest {
		if _, dup := k.keys[id]; dup {
			return nil, fmt.Errorf("duplicate key id %s", id)
		}
		// One key under two ids would split its seal count (TH-42) and
		// make a key id edit in the database undetectable by id alone.
		for _, prev := range k.ids {
			if subtle.ConstantTimeCompare(seen[prev], others[id]) == 1 {
				return nil, fmt.Errorf("key %s has the same bytes as key %s", id, prev)
			}
		}
		seen[id] = others[id]
		sk, err := newSealKey(id, others[id])
		if err != nil {
			return nil, err
		}
		k.keys[id] = sk
		k.ids = append(k.ids, id)
	}
	return k, nil
}

// newSealKey validates one key and builds its AEAD.
func newSealKey(id string, key []byte) (*sealKey, error) {
	if !validKeyID(id) {
		// The id is not echoed: a caller may have swapped id and key.
		return nil, errors.New("invalid key id, want [a-z0-9_-]{1,16}")
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("key %s is %d bytes, want %d", id, len(key), keySize)
	}
	// An all-zero key is a placeholder, not a secret (TH-42 weak keys).
	if !slices.ContainsFunc(key, func(b byte) bool { return b != 0 }) {
		return nil, fmt.Errorf("key %s is all zero bytes", id)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", id, err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", id, err)
	}
	return &sealKey{id: id, aead: aead}, nil
}

// validKeyID reports whether id matches [a-z0-9_-]{1,16}. Ids are written
// into every sealed value and into error messages, so they stay short and
// plain.
func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// GenerateKeySpec returns a fresh "id:base64" spec with a random 32-byte key
// (for development mode). id must be a valid key id; ParseKeyring rejects
// the spec otherwise.
func GenerateKeySpec(id string) string {
	b := make([]byte, keySize)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return id + ":" + base64.StdEncoding.EncodeToString(b)
}

// Seal encrypts plaintext bound to aad (the record identity: e.g.
// "connections/<id>/upstream_credential/v1") under the primary key.
// Output format: version byte 1, key id length byte, key id, 12-byte random
// nonce, ciphertext+tag (see the layout comment at the top of this file).
// An empty aad is refused: it would let a ciphertext move between records.
func (k *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, errors.New("seal: aad is empty, want the record identity")
	}
	p := k.primary
	if p == nil {
		return nil, errors.New("seal: keyring has no primary key, build it with ParseKeyring or NewKeyring")
	}
	// Add first, then check: concurrent callers each get a distinct count,
	// so exactly sealLimit seals succeed.
	if n := p.seals.Add(1); n > k.sealLimit {
		return nil, fmt.Errorf("seal with key %s: %w", p.id, ErrKeyExhausted)
	}
	header := appendHeader(nil, p.id)
	out := make([]byte, len(header), len(header)+p.aead.Overhead()+len(plaintext))
	copy(out, header)
	return p.aead.Seal(out, nil, plaintext, additionalData(header, aad)), nil
}

// Open decrypts a value made by Seal with the same aad. Wrong aad or
// tampering gives ErrSealBroken; an unknown key id gives ErrKeyUnavailable
// (the record then needs a reconnect, never a plaintext fallback: TH-42).
// Every error wraps one of these two. On success the result is never nil.
func (k *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	id, body, err := parseHeader(sealed)
	if err != nil {
		return nil, err
	}
	sk, ok := k.keys[id]
	if !ok {
		return nil, fmt.Errorf("open with key %s: %w", id, ErrKeyUnavailable)
	}
	header := sealed[:len(sealed)-len(body)]
	pt, err := sk.aead.Open(nil, nil, body, additionalData(header, aad))
	if err != nil {
		// GCM's error says only "message authentication failed"; the
		// sentinel carries the meaning callers branch on.
		return nil, fmt.Errorf("open with key %s: %w", id, ErrSealBroken)
	}
	if pt == nil {
		pt = []byte{} // an empty secret opens as empty, not as nil
	}
	return pt, nil
}

// NeedsReseal reports whether sealed was made with a key other than the
// primary (for the re-encryption job). It returns false for a value whose
// header cannot be read: resealing needs Open, which reports that value as
// broken.
func (k *Keyring) NeedsReseal(sealed []byte) bool {
	id, _, err := parseHeader(sealed)
	return err == nil && id != k.primaryIDOrNone()
}

// PrimaryID returns the primary key's id.
func (k *Keyring) PrimaryID() string {
	return k.primaryIDOrNone()
}

// appendHeader appends the version byte, id length and id.
func appendHeader(dst []byte, id string) []byte {
	dst = append(dst, sealVersion, byte(len(id)))
	return append(dst, id...)
}

// parseHeader splits sealed into its key id and the nonce||ciphertext||tag
// body, checking every length before slicing so no input can panic.
func parseHeader(sealed []byte) (id string, body []byte, err error) {
	if len(sealed) < 2 {
		return "", nil, fmt.Errorf("sealed value is %d bytes: %w", len(sealed), ErrSealBroken)
	}
	if sealed[0] != sealVersion {
		return "", nil, fmt.Errorf("sealed value has version %d, want %d: %w", sealed[0], sealVersion, ErrSealBroken)
	}
	n := int(sealed[1])
	if n == 0 || n > maxIDLen {
		return "", nil, fmt.Errorf("sealed value has key id length %d: %w", n, ErrSealBroken)
	}
	if len(sealed) < 2+n+nonceSize+tagSize {
		return "", nil, fmt.Errorf("sealed value is %d bytes: %w", len(sealed), ErrSealBroken)
	}
	id = string(sealed[2 : 2+n])
	// Checked before the id reaches an error message or a map lookup, so
	// stored bytes never flow unfiltered into logs.
	if !validKeyID(id) {
		return "", nil, fmt.Errorf("sealed value has an invalid key id: %w", ErrSealBroken)
	}
	return id, sealed[2+n:], nil
}

// additionalData is the GCM additional data: header then record identity,
// in a fresh slice so it never aliases the output buffer.
func additionalData(header, aad []byte) []byte {
	ad := make([]byte, 0, len(header)+len(aad))
	ad = append(ad, header...)
	return append(ad, aad...)
}

// The printing methods below have value receivers on purpose: they then
// apply to Keyring and *Keyring alike, so even a dereferenced keyring
// prints ids only. A Keyring holds only pointers, maps and slices, so the
// copy is cheap and shares the seal counters.

// String returns the key ids, primary first, e.g. "keyring(primary=k2 keys=k2,k1)".
func (k Keyring) String() string {
	return fmt.Sprintf("keyring(primary=%s keys=%s)", k.primaryIDOrNone(), strings.Join(k.ids, ","))
}

// GoString is like String in Go syntax, for %#v.
func (k Keyring) GoString() string {
	return fmt.Sprintf("sealing.Keyring{primary: %q, keys: %q}", k.primaryIDOrNone(), k.ids)
}

// Format prints String for every verb and GoString for %#v. Without it fmt
// would walk the unexported fields.
func (k Keyring) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, k.GoString())
		return
	}
	_, _ = io.WriteString(f, k.String())
}

// LogValue makes slog log the key ids only.
func (k Keyring) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("primary", k.primaryIDOrNone()),
		slog.Any("keys", k.ids),
	)
}

// MarshalJSON encodes the key ids only, e.g. for a config dump.
func (k Keyring) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Primary string   `json:"primary"`
		Keys    []string `json:"keys"`
	}{k.primaryIDOrNone(), k.ids})
}

// primaryIDOrNone keeps the printers safe on a zero Keyring.
func (k Keyring) primaryIDOrNone() string {
	if k.primary == nil {
		return ""
	}
	return k.primary.id
}

var (
	_ fmt.Stringer   = Keyring{}
	_ fmt.GoStringer = Keyring{}
	_ fmt.Formatter  = Keyring{}
	_ slog.LogValuer = Keyring{}
	_ json.Marshaler = Keyring{}
)
