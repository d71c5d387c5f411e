package server

import (
	"errors"
	"net"
	"os"
)

// readTimedOut reports whether a body read failed because
// http.Server's ReadTimeout fired while the client was still sending
// (TH-47: slow bodies get 408, not 400). The connection's deadline error
// is os.ErrDeadlineExceeded inside a *net.OpError; any net.Error that
// says Timeout counts too.
func readTimedOut(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// msgReadTimeout is the answer to a body that did not arrive in time.
const msgReadTimeout = "the request body was not received in time"
