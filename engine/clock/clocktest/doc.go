// Package clocktest holds Fake, the clock tests inject in place of
// clock.Real: it moves only when the test moves it, or, stepping, when
// the code under test waits, so no test sleeps to wait for a deadline
// (STYLE.md 9). Its Now method value also serves where a component
// takes a Now func() time.Time.
package clocktest
