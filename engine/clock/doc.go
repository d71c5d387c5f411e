// Package clock is the time source the engine takes wherever it waits:
// Now, and After for timers. Production passes Real; tests pass
// clocktest.Fake, which moves only when the test says so, so that no
// test sleeps to wait for a deadline (STYLE.md 9).
//
// Code that only reads the time takes a `Now func() time.Time` instead,
// which a Fake's Now method value satisfies too.
package clock
