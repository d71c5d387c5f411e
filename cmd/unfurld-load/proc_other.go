//go:build !linux

package main

import (
	"errors"
	"os/exec"
	"time"
)

// setParentDeathSignal does nothing outside Linux: children are stopped
// by the deferred cleanup and by the terminal's Ctrl-C, which reaches the
// whole process group.
func setParentDeathSignal(*exec.Cmd) {}

// cpuTime is only implemented on Linux; the report then leaves out CPU
// per request.
func cpuTime(int) (time.Duration, bool) { return 0, false }

// peakRSS is only implemented on Linux; the report then leaves it out.
func peakRSS(int) (int64, bool) { return 0, false }

// currentRSS is only implemented on Linux; the report then shows 0.
func currentRSS(int) (int64, bool) { return 0, false }

// dropCached is only implemented on Linux.
func dropCached(string) error { return errors.New("--cold needs Linux") }

// statusBytes is only implemented on Linux; the report then shows 0.
func statusBytes(int, string) (int64, bool) { return 0, false }
