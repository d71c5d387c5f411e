package provider

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// asciiSamples cover every ASCII control character with and without
// newline keeping, CR/LF runs and surrounding space.
var asciiSamples = []string{
	"", "plain text", "a\tb", "a\nb", "a\rb", "a\r\nb", "a\r\r\nb", "a\n\r\nb", "\r\n", "\r", "a\r",
	" \x00lead", "trail\x7f ", "\x1b[31mred\x1b[0m", "x\x01\x02\x03\x04\x05\x06\x07\x08y",
	"x\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1c\x1d\x1e\x1fy",
}

// TestSanitizeASCIIFastPaths: the ASCII paths give exactly what the rune
// mapping gives (TH-33), so they are only faster.
func TestSanitizeASCIIFastPaths(t *testing.T) {
	t.Parallel()
	for _, s := range asciiSamples {
		for _, keep := range []bool{false, true} {
			assert.Equal(t, sanitizeRunes(s, keep), sanitizeASCII(s, keep), "%q keepNewlines=%v", s, keep)
			if _, printable := asciiKind(s); printable {
				assert.Equal(t, s, sanitizeRunes(s, keep), "printable ASCII is left as it is: %q", s)
			}
		}
	}
	ascii, printable := asciiKind("héllo")
	assert.False(t, ascii)
	assert.False(t, printable)
	ascii, printable = asciiKind("a\nb")
	assert.True(t, ascii)
	assert.False(t, printable)
}

// FuzzSanitizeASCII compares the ASCII mapping with the rune mapping on
// any ASCII input.
func FuzzSanitizeASCII(f *testing.F) {
	for _, s := range asciiSamples {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, keep bool) {
		if ascii, _ := asciiKind(s); !ascii {
			return
		}
		if got, want := sanitizeASCII(s, keep), sanitizeRunes(s, keep); got != want {
			t.Fatalf("sanitizeASCII(%q, %v) = %q, rune mapping %q", s, keep, got, want)
		}
	})
}
