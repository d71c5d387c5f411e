package sealing

import (
	"fmt"

	"github.com/unfurld/unfurld/engine/store"
)

// Sealed fields of a connection record.
const (
	FieldNotionToken        = "notion_token"
	FieldUpstreamCredential = "upstream_credential"
)

// connectionAAD binds a sealed connection field to the record's identity
// (TH-41): the field name, provider, upstream account, Notion workspace
// and Notion owner. A ciphertext copied into another connection - that of
// another Notion user of the same workspace and account included - or
// into the other field, fails to open. The identity is used rather than
// the connection ID because the ID is only known after the upsert that
// stores the sealed value, and the identity never changes for a record.
// The owner is appended only when set, so records sealed before owners
// were kept (and read with none) still open.
func connectionAAD(c store.Connection, field string) []byte {
	aad := []byte("unfurld/connection/v1")
	parts := []string{field, c.Provider, c.AccountKey, c.WorkspaceID}
	if c.Owner != "" {
		parts = append(parts, c.Owner)
	}
	for _, part := range parts {
		aad = append(aad, 0)
		aad = append(aad, part...)
	}
	return aad
}

// SealConnectionField seals plaintext for field of connection c.
func SealConnectionField(k *Keyring, c store.Connection, field string, plaintext []byte) ([]byte, error) {
	b, err := k.Seal(plaintext, connectionAAD(c, field))
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", field, err)
	}
	return b, nil
}

// OpenConnectionField opens field of connection c. An error means the key
// is gone or the record was tampered with; the caller treats the
// connection as needing a reconnect, never as plaintext (TH-42).
func OpenConnectionField(k *Keyring, c store.Connection, field string, sealed []byte) ([]byte, error) {
	b, err := k.Open(sealed, connectionAAD(c, field))
	if err != nil {
		return nil, fmt.Errorf("open %s of connection %s: %w", field, c.ID, err)
	}
	return b, nil
}

// flowAAD binds a sealed pending flow to its record key, the flow ID
// (TH-41). Its bytes must never change: flows already stored open only
// with the same aad.
func flowAAD(id string) []byte { return []byte("unfurld/flow/v1\x00" + id) }

// SealFlow seals the state of pending flow id.
func SealFlow(k *Keyring, id string, plaintext []byte) ([]byte, error) {
	b, err := k.Seal(plaintext, flowAAD(id))
	if err != nil {
		return nil, fmt.Errorf("seal flow: %w", err)
	}
	return b, nil
}

// OpenFlow opens the state of pending flow f.
func OpenFlow(k *Keyring, f store.Flow) ([]byte, error) {
	b, err := k.Open(f.Data, flowAAD(f.ID))
	if err != nil {
		return nil, fmt.Errorf("open flow: %w", err)
	}
	return b, nil
}

// successorAADPrefix starts the record identity a successor pair is sealed
// under; the spent refresh token's digest follows, so a sealed pair copied
// onto another token fails to open (TH-41). Its bytes must never change.
const successorAADPrefix = "tokens/successor/v1/"

// SuccessorAAD binds the sealed successor pair of a spent refresh token
// to that token's digest, so a pair copied onto another token fails to
// open (TH-41). The issuer seals and opens with it; the Resealer re-seals
// under it.
func SuccessorAAD(digest string) []byte { return []byte(successorAADPrefix + digest) }
