//go:build linux

package collector

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// setSystemClock sets the wall clock (CAP_SYS_TIME).
func setSystemClock(t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	if err := unix.Settimeofday(&tv); err != nil {
		return fmt.Errorf("settimeofday: %w (the collector needs CAP_SYS_TIME, or set uplink.hj212.clock_command)", err)
	}
	return nil
}

// clockSynced reports whether a time service keeps the clock (the
// kernel's STA_UNSYNC is clear).
func clockSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	return err == nil && state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0
}
