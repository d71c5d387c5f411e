package main

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// setParentDeathSignal makes the kernel send SIGTERM to the child when
// this process dies without stopping it (a crash, SIGKILL).
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// userHZ is the unit of the times in /proc/PID/stat; 100 on every Linux
// architecture Go supports.
const userHZ = 100

// cpuTime returns the user plus system CPU time process pid has used, from
// /proc/PID/stat (fields 14 and 15).
func cpuTime(pid int) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; fields count from the
	// closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / userHZ, true
}

// peakRSS returns the most resident memory process pid has held, from
// the VmHWM line of /proc/PID/status.
func peakRSS(pid int) (int64, bool) { return statusBytes(pid, "VmHWM:") }

// currentRSS returns the resident memory of process pid (VmRSS).
func currentRSS(pid int) (int64, bool) { return statusBytes(pid, "VmRSS:") }

// statusBytes reads a "NAME: N kB" line of /proc/PID/status.
func statusBytes(pid int, name string) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, false
		}
		return kb << 10, true
	}
	return 0, false
}

// dropCached asks the kernel to drop the file's pages from the page
// cache, so that the next open reads it from disk (a cold start). It
// affects this file only.
func dropCached(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := f.Sync(); err != nil {
		return err
	}
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}
