// Package sealing keeps stored secrets sealed (security.md TH-41, TH-42):
// the AES-256-GCM Keyring, the record identities each sealed field is
// bound to (connections, pending flows, refresh successors), and key
// rotation: counting what each key still seals, re-sealing records under
// the primary key, and refusing or dropping a removed key.
package sealing
