package server

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
)

// newRequestID returns 16 random bytes as 32 hex characters. The id only
// ties the log lines of a request together and is echoed to the client,
// so it needs to be unique, not secret: the runtime's generator serves it
// without the crypto/rand read and rejection sampling that echo's default
// generator does on every request (issue 2).
func newRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}
