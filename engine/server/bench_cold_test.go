package server_test

import (
	"bytes"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkUnfurlHandlerCold is issue 2's scenario c in process: the
// full echo app with the result and upstream caches off, a distinct URI
// per request (so every unfurl records a new subscription) and an
// instant loopback upstream serving the ~6 KB item. Profile it with:
//
//	go test -run '^$' -bench HandlerCold -benchmem -cpuprofile cpu.out ./engine/server
func BenchmarkUnfurlHandlerCold(b *testing.B) {
	h, tok := benchServer(b, true)
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			uri := "https://tracker.example.com/acme/items/" + strconv.FormatUint(next.Add(1), 10)
			rec := serveUnfurl(h, tok, []byte(`{"uri":"`+uri+`"}`))
			if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte(`"path":["attributes"]`)) {
				b.Errorf("status %d body %s", rec.Code, rec.Body.String())
				return
			}
		}
	})
}
