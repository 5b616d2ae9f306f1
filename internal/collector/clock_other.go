//go:build !linux

package collector

import (
	"errors"
	"time"
)

func setSystemClock(time.Time) error {
	return errors.New("setting the clock is supported on Linux only; set uplink.hj212.clock_command")
}

func clockSynced() bool { return true }
