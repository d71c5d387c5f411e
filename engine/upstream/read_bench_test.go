package upstream

import (
	"bytes"
	"io"
	"strconv"
	"testing"
)

// BenchmarkReadBody reads a 6 KB answer (a GitHub issue's size) with and
// without an announced length, as send does: through io.LimitReader, in
// the 4 KB pieces a bufio-backed response body hands out (issue 2).
func BenchmarkReadBody(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 6000/16)
	c := &Client{}
	for _, size := range []int64{int64(len(body)), -1} {
		b.Run("size="+strconv.FormatInt(size, 10), func(b *testing.B) {
			b.ReportAllocs()
			r := bytes.NewReader(body)
			for b.Loop() {
				r.Reset(body)
				got, err := c.readBody(io.LimitReader(pieces{r}, defaultMaxBodyBytes+1), size)
				if err != nil || len(got) != len(body) {
					b.Fatalf("%d bytes, %v", len(got), err)
				}
			}
		})
	}
}

// pieces hands out at most 4 KB per Read, like bufio.Reader's default
// buffer under net/http's body reader.
type pieces struct{ r io.Reader }

func (p pieces) Read(b []byte) (int, error) {
	if len(b) > 4096 {
		b = b[:4096]
	}
	return p.r.Read(b)
}
