package bolt

import (
	"bytes"
	"errors"
)

// Compound keys join escaped parts with keySep. Escaping maps 00 to
// 01 01 and 01 to 01 02, so an escaped part holds no 00 byte: the
// separators are the only 00 bytes in a key, and a part can never be
// confused with the start of the next one. Without it, the subscription
// (p, "c", "u\x00x") and (p, "c\x00u", "x") would share a key, and the
// prefix scan for a URI "u" would match index entries of "u\x00...".
// The mapping keeps byte order (00 < 01 01 < 01 02 < 02), so keys sort
// like the tuples of strings they encode. Strings without 00 or 01 bytes,
// which is every key unfurld makes, are stored as they are.
const (
	keySep    = 0x00
	keyEscape = 0x01
)

// errBadKey means a stored key does not decode; only a damaged file has one.
var errBadKey = errors.New("malformed key")

// appendPart appends s to dst, escaped.
func appendPart(dst []byte, s string) []byte {
	for i := range len(s) {
		switch c := s[i]; c {
		case keySep:
			dst = append(dst, keyEscape, 0x01)
		case keyEscape:
			dst = append(dst, keyEscape, 0x02)
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// compoundKey joins the escaped parts with keySep.
func compoundKey(parts ...string) []byte {
	return appendCompoundKey(nil, parts...)
}

// appendCompoundKey appends compoundKey(parts...) to dst.
func appendCompoundKey(dst []byte, parts ...string) []byte {
	for i, p := range parts {
		if i > 0 {
			dst = append(dst, keySep)
		}
		dst = appendPart(dst, p)
	}
	return dst
}

// keyPrefix is the prefix shared by every compound key whose leading parts
// are parts: each escaped part followed by keySep. A shorter or longer
// string in the last part does not share it.
func keyPrefix(parts ...string) []byte {
	var k []byte
	for _, p := range parts {
		k = appendPart(k, p)
		k = append(k, keySep)
	}
	return k
}

// splitKey decodes a compound key of exactly n parts.
func splitKey(k []byte, n int) ([]string, error) {
	raw := bytes.Split(k, []byte{keySep})
	if len(raw) != n {
		return nil, errBadKey
	}
	parts := make([]string, n)
	for i, r := range raw {
		p, err := unescape(r)
		if err != nil {
			return nil, err
		}
		parts[i] = p
	}
	return parts, nil
}

// unescape reverses appendPart.
func unescape(b []byte) (string, error) {
	if bytes.IndexByte(b, keyEscape) < 0 {
		return string(b), nil
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != keyEscape {
			out = append(out, b[i])
			continue
		}
		if i+1 == len(b) {
			return "", errBadKey
		}
		i++
		switch b[i] {
		case 0x01:
			out = append(out, keySep)
		case 0x02:
			out = append(out, keyEscape)
		default:
			return "", errBadKey
		}
	}
	return string(out), nil
}
